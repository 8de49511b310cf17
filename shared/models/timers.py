"""Indexes the timers sweep through (owner: tasks service, timers; migration 0006).

No new tables: the timers act on `assignments`, `tasks` and `outbox`. Two partial indexes are
added to tables other modules describe, declared here so `alembic check` sees them:

- `ix_tasks_expires_open (expires_at) WHERE status = 'open' AND expires_at IS NOT NULL`: the
  lifetime sweep takes the oldest open tasks past their own lifetime (tasks added to a project
  after it was published); tasks uploaded before publish have no `expires_at` of their own and
  inherit the project's (`projects.tasks_expire_at`), swept per project through the indexes
  declared in `shared/models/tasks.py`. Finished tasks are in neither.
- `ix_outbox_delivered (delivered_at) WHERE delivered_at IS NOT NULL`: the retention sweep
  deletes the oldest delivered messages without reading the pending ones.

The deadline and auto-approval sweeps use indexes that already exist
(`ix_assignments_deadline_accepted`, `ix_assignments_auto_approve_submitted`).
"""

from __future__ import annotations

from sqlalchemy import Index, text

from shared.models.tasks import Task
from shared.models.tasks_queue import OutboxMessage

TASKS_EXPIRES_OPEN = Index(
    "ix_tasks_expires_open",
    Task.__table__.c.expires_at,
    postgresql_where=text("status = 'open' AND expires_at IS NOT NULL"),
)
OUTBOX_DELIVERED = Index(
    "ix_outbox_delivered",
    OutboxMessage.__table__.c.delivered_at,
    postgresql_where=text("delivered_at IS NOT NULL"),
)
