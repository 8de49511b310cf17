"""SQL of the timer sweeps that have no home in another domain (raw asyncpg).

Every sweep claims its batch the same way: the oldest due rows through a partial index,
`FOR UPDATE SKIP LOCKED` (so replicas split the work instead of queueing on each other or acting
twice), and a state re-check on the locked row in the changing statement.
"""

from __future__ import annotations

import asyncpg

# submitted -> approved for assignments whose auto_approve_at passed (by `$2` seconds), oldest
# first along ix_assignments_auto_approve_submitted. Exactly what a manual approve writes, with
# no feedback; the returned columns are what review.service.payout_message needs.
_APPROVE_DUE_SUBMITTED = """
WITH due AS (
    SELECT id FROM assignments
    WHERE status = 'submitted' AND auto_approve_at <= now() - make_interval(secs => $2)
    ORDER BY auto_approve_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE assignments a SET status = 'approved', feedback = NULL, reviewed_at = now()
FROM due WHERE a.id = due.id AND a.status = 'submitted'
RETURNING a.id, a.task_id, a.project_id, a.requester_id, a.worker_id, a.reward_cents, a.fee_cents
"""


async def approve_due_submitted(
    conn: asyncpg.Connection, *, limit: int, grace_seconds: float
) -> list[asyncpg.Record]:
    return await conn.fetch(_APPROVE_DUE_SUBMITTED, limit, grace_seconds)


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


async def prune_delivered_outbox(
    conn: asyncpg.Connection, *, limit: int, retention_seconds: float
) -> int:
    status = await conn.execute(_PRUNE_DELIVERED, limit, retention_seconds)
    return int(status.split()[-1])
