"""SQL of the timer sweeps that are not assignment transitions (those live in
services/tasks/lifecycle: expire, auto_approve, task_lifetime).

Every sweep claims its batch the same way: the oldest due rows through a partial index,
`FOR UPDATE SKIP LOCKED` (so replicas split the work instead of queueing on each other or acting
twice), and a state re-check on the locked row in the changing statement.
"""

from __future__ import annotations

from shared.database import WriteDb

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
