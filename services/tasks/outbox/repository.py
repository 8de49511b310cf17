"""SQL for delivering the payments outbox (hand-tuned: leasing is on every deliverer pass).
Messages are written by the transitions that emit them (services/tasks/lifecycle/messages.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.tasks.outbox.schemas import OutboxStats
from shared.database import Db, Writable, as_row, as_rows


@dataclass(frozen=True, slots=True)
class LeasedMessage:
    id: int
    kind: str
    key: str
    payload: Any
    attempts: int


# Lease due messages: whoever leases a message owns its delivery until the lease runs out, so
# several deliverers (replicas) never send the same message at the same time, and a deliverer
# that dies mid-call only delays the message by one lease.
_LEASE_DUE = """
UPDATE outbox o
SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
FROM (
    SELECT id FROM outbox
    WHERE delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) due
WHERE o.id = due.id
RETURNING o.id, o.kind, o.key, o.payload, o.attempts
"""


async def lease_due(db: Writable, *, limit: int, lease_seconds: float) -> list[LeasedMessage]:
    return as_rows(LeasedMessage, await db.fetch(_LEASE_DUE, limit, lease_seconds))


async def mark_delivered(db: Writable, ids: Sequence[int]) -> None:
    await db.execute(
        "UPDATE outbox SET delivered_at = now(), last_error = NULL WHERE id = ANY($1::bigint[])",
        list(ids),
    )


async def schedule_retries(
    db: Writable,
    *,
    ids: Sequence[int],
    delays_seconds: Sequence[float],
    errors: Sequence[str],
) -> None:
    """Back these messages off, each by its own delay, in one statement."""
    await db.execute(
        """
        UPDATE outbox o
        SET next_attempt_at = now() + make_interval(secs => r.delay), last_error = r.error
        FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS r(id, delay, error)
        WHERE o.id = r.id AND o.delivered_at IS NULL
        """,
        list(ids),
        list(delays_seconds),
        list(errors),
    )


async def park(db: Writable, *, ids: Sequence[int], errors: Sequence[str]) -> None:
    """Set these messages aside for a human, each with the answer that refused it."""
    await db.execute(
        """
        UPDATE outbox o
        SET parked_at = now(), last_error = r.error
        FROM unnest($1::bigint[], $2::text[]) AS r(id, error)
        WHERE o.id = r.id AND o.delivered_at IS NULL
        """,
        list(ids),
        list(errors),
    )


_STATS = """
SELECT
    count(*) FILTER (WHERE delivered_at IS NULL AND parked_at IS NULL) AS pending,
    count(*) FILTER (
        WHERE delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
    ) AS due,
    count(*) FILTER (WHERE delivered_at IS NULL AND parked_at IS NULL AND attempts > 0)
        AS retrying,
    count(*) FILTER (WHERE parked_at IS NOT NULL AND delivered_at IS NULL) AS parked,
    count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
    coalesce(
        extract(epoch FROM now() - min(created_at) FILTER (
            WHERE delivered_at IS NULL AND parked_at IS NULL
        )),
        0
    )::float8 AS oldest_pending_seconds
FROM outbox
"""


async def stats(db: Db) -> OutboxStats:
    row = as_row(OutboxStats, await db.fetchrow(_STATS))
    assert row is not None  # an aggregate always has a row
    return row


@dataclass(frozen=True, slots=True)
class PendingRow:
    pending: int
    oldest_pending_seconds: float


# What is still owed, along ix_outbox_due (pending rows only; delivered rows, kept for days, are
# never read): cheap enough for every replica to sample every few seconds.
_PENDING = """
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_pending_seconds
FROM outbox
WHERE delivered_at IS NULL AND parked_at IS NULL
"""


async def pending(db: Db) -> PendingRow:
    row = as_row(PendingRow, await db.fetchrow(_PENDING))
    assert row is not None  # an aggregate always has a row
    return row
