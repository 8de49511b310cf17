"""tasks service: timers (deadlines, auto-approval, task lifetimes, outbox retention)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

The sweeps of services/tasks/timers/ each claim the oldest due rows with `FOR UPDATE SKIP
LOCKED` through a partial index (shared/models/tasks.py):

- deadlines: `ix_assignments_deadline_accepted` (0001) already exists;
- auto-approval: `ix_assignments_auto_approve_submitted` (0001) already exists;
- task lifetimes: `ix_tasks_expires_open` is new. Partial on open tasks that have a lifetime
  (published), so it holds the live work only and a draft upload adds nothing to it; a claim's
  `open_slots` update does not touch its key, and the status change a task makes once
  (open -> completed/expired) removes it;
- outbox retention: `ix_outbox_delivered` is new, partial on delivered rows, so pruning never
  reads the pending ones (which `ix_outbox_due` serves).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_expires_open",
        "tasks",
        ["expires_at"],
        postgresql_where=sa.text("status = 'open' AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_delivered",
        "outbox",
        ["delivered_at"],
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_delivered", table_name="outbox")
    op.drop_index("ix_tasks_expires_open", table_name="tasks")
