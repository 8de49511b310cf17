"""SQL of the timer sweeps that are not assignment transitions (those live in
services/tasks/lifecycle: expire, auto_approve, task_lifetime).

Every sweep claims its batch the same way: the oldest due rows through a partial index,
`FOR UPDATE SKIP LOCKED` (so replicas split the work instead of queueing on each other or acting
twice), and a state re-check on the locked row in the changing statement.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.database import Db, WriteDb, as_row

# Delivered outbox messages older than the retention, oldest first along ix_outbox_delivered.
# Pending and parked messages are never touched (delivered_at IS NULL).
_PRUNE_DELIVERED = """
WITH old AS (
    SELECT id FROM outbox
    WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $2)
    ORDER BY delivered_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM outbox o USING old WHERE o.id = old.id
"""


async def prune_delivered_outbox(db: WriteDb, *, limit: int, retention_seconds: float) -> int:
    status = await db.execute(_PRUNE_DELIVERED, limit, retention_seconds)
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class LagRow:
    """Seconds the oldest due item of each sweep (timers/service.py SWEEPS) has waited."""

    assignment_deadlines: float
    auto_approvals: float
    task_lifetimes: float
    outbox_retention: float
    pay_floor_settlements: float
    work_sessions: float
    timesheet_approvals: float
    requester_scorecards: float


# Per sweep, how long the oldest item it should act on has waited past the moment it may act
# (due + grace; retention for delivered outbox rows; the scorecard's maximum age), 0 when none:
# one min() per partial index (ix_assignments_deadline_accepted,
# ix_assignments_auto_approve_submitted, ix_tasks_expires_open, ix_projects_tasks_expiry,
# ix_outbox_delivered, ix_pay_floors_due, ix_timesheets_auto_approve_open), an index probe each,
# so every replica may run it every few seconds. Two are walks by design: the open work
# sessions (no index on `expires_at`, which heartbeats write: shared/models/hourly.py; the
# sweep walks them too) and the published projects' requesters against their scorecards.
# GREATEST and LEAST skip NULLs (nothing due).
_LAG = """
WITH oldest AS (
    SELECT
        (SELECT min(deadline) FROM assignments WHERE status = 'accepted') AS deadline,
        (SELECT min(auto_approve_at) FROM assignments WHERE status = 'submitted')
            AS auto_approve_at,
        least(
            (SELECT min(expires_at) FROM tasks WHERE status = 'open' AND expires_at IS NOT NULL),
            (SELECT min(tasks_expire_at) FROM projects
             WHERE tasks_expire_at IS NOT NULL AND tasks_expiry_swept_at IS NULL)
        ) AS expires_at,
        (SELECT min(delivered_at) FROM outbox WHERE delivered_at IS NOT NULL) AS delivered_at,
        (SELECT min(next_settlement_at) FROM pay_floors WHERE finished_at IS NULL)
            AS settlement_at,
        (SELECT min(expires_at) FROM work_sessions WHERE status = 'open') AS session_expires_at,
        (SELECT min(b.exhausted_at) FROM hourly_budgets b
         WHERE b.exhausted_at IS NOT NULL AND b.used_seconds >= b.budget_seconds
           AND EXISTS (SELECT 1 FROM work_sessions s
                       WHERE s.project_id = b.project_id AND s.status = 'open'))
            AS budget_exhausted_at,
        (SELECT min(auto_approve_at) FROM timesheets WHERE status = 'open')
            AS timesheet_auto_approve_at,
        (SELECT min(coalesce(c.refreshed_at, r.published_at)) FROM (
             SELECT requester_id, min(published_at) AS published_at FROM projects
             WHERE status = 'published' GROUP BY requester_id) r
         LEFT JOIN requester_scorecards c ON c.requester_id = r.requester_id)
            AS scorecard_at
)
SELECT
    coalesce(greatest(0, extract(epoch FROM now() - deadline) - $1), 0)::float8
        AS assignment_deadlines,
    coalesce(greatest(0, extract(epoch FROM now() - auto_approve_at) - $1), 0)::float8
        AS auto_approvals,
    coalesce(greatest(0, extract(epoch FROM now() - expires_at) - $1), 0)::float8
        AS task_lifetimes,
    coalesce(greatest(0, extract(epoch FROM now() - delivered_at) - $2), 0)::float8
        AS outbox_retention,
    coalesce(greatest(0, extract(epoch FROM now() - settlement_at)), 0)::float8
        AS pay_floor_settlements,
    coalesce(greatest(
        0,
        extract(epoch FROM now() - session_expires_at) - $1,
        extract(epoch FROM now() - budget_exhausted_at)
    ), 0)::float8 AS work_sessions,
    coalesce(greatest(0, extract(epoch FROM now() - timesheet_auto_approve_at) - $1), 0)::float8
        AS timesheet_approvals,
    coalesce(greatest(0, extract(epoch FROM now() - scorecard_at) - $3), 0)::float8
        AS requester_scorecards
FROM oldest
"""


async def sweep_lag(
    db: Db, *, grace_seconds: float, retention_seconds: float, scorecard_max_age_seconds: float
) -> LagRow:
    row = as_row(
        LagRow,
        await db.fetchrow(_LAG, grace_seconds, retention_seconds, scorecard_max_age_seconds),
    )
    assert row is not None  # a SELECT of aggregates always has a row
    return row
