"""SQL for review: state transitions of a requester's assignments, single or set-based."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.tasks.assignments.repository import ASSIGNMENT_COLUMNS
from services.tasks.slots import consume_slots_sql


# Everything review needs besides the public columns; `overridable` says whether a rejected
# assignment is still within the override window (counted from its submission).
def _review_columns(window_days: str) -> str:
    """`window_days`: the statement's parameter holding the override window."""
    return f"""{ASSIGNMENT_COLUMNS}, a.requester_id, a.fee_cents,
    a.submitted_at > now() - make_interval(days => {window_days}) AS overridable"""


_REVIEW_COLUMNS = _review_columns("$3")

_LOCK = f"""
SELECT {_REVIEW_COLUMNS}
FROM assignments a
WHERE a.id = ANY($1::text[]) AND a.requester_id = $2
ORDER BY a.id
FOR UPDATE
"""


async def lock_for_review(
    conn: asyncpg.Connection,
    *,
    requester_id: str,
    assignment_ids: Sequence[str],
    override_window_days: int,
) -> list[asyncpg.Record]:
    """The requester's assignments among `assignment_ids`, locked in id order (so concurrent
    reviews of overlapping sets cannot deadlock); someone else's are simply absent."""
    return await conn.fetch(_LOCK, list(assignment_ids), requester_id, override_window_days)


# submitted -> approved/rejected, conditional on the state, for any number of assignments.
# The WHERE re-checks the status on the locked row: of two concurrent approvals of one
# assignment exactly one gets the row back, so the payout is enqueued once.
_DECIDE = f"""
UPDATE assignments a
SET status = $4, feedback = d.feedback, reviewed_at = now()
FROM unnest($1::text[], $2::text[]) AS d(id, feedback)
WHERE a.id = d.id AND a.requester_id = $5 AND a.status = 'submitted'
RETURNING {_REVIEW_COLUMNS}
"""


async def decide_submitted(
    conn: asyncpg.Connection,
    *,
    requester_id: str,
    decision: str,
    ids: Sequence[str],
    feedbacks: Sequence[str | None],
    override_window_days: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        _DECIDE, list(ids), list(feedbacks), override_window_days, decision, requester_id
    )


# A single approval in one statement (atomic on its own: no BEGIN/COMMIT), the hot path of
# review. It does what `decide_submitted` + `slots.consume_slots` + `gold.record_decisions` +
# the outbox's `enqueue` do for one assignment: submitted -> approved (the WHERE re-checks the
# state on the locked row, so of two concurrent approvals one gets the row), its slot consumed
# (the task completes with its last approval), the worker's tally in the project, and the
# payout message (`service.payout_message`'s payload, built here; a test compares the two).
_APPROVE_ONE = f"""
WITH decided AS (
    UPDATE assignments a
    SET status = 'approved', feedback = $3, reviewed_at = now()
    WHERE a.id = $1 AND a.requester_id = $2 AND a.status = 'submitted'
    RETURNING {_review_columns("$4")}
), consumed AS (
    {consume_slots_sql("(SELECT task_id, 1 AS n FROM decided) AS c")}
), tallied AS (
    UPDATE gold_stats g SET approved = g.approved + 1, updated_at = now()
    FROM decided d WHERE g.project_id = d.project_id AND g.worker_id = d.worker_id
), queued AS (
    INSERT INTO outbox (kind, key, payload)
    SELECT 'payout', 'pay:' || d.id, jsonb_build_object(
        'requester_id', d.requester_id, 'project_id', d.project_id, 'task_id', d.task_id,
        'assignment_id', d.id, 'worker_id', d.worker_id, 'reward_cents', d.reward_cents,
        'fee_cents', d.fee_cents, 'source', 'reserved', 'key', 'pay:' || d.id)
    FROM decided d
    ON CONFLICT (key) DO NOTHING
)
SELECT * FROM decided
"""


async def approve_submitted(
    conn: asyncpg.Connection,
    *,
    requester_id: str,
    assignment_id: str,
    feedback: str | None,
    override_window_days: int,
) -> asyncpg.Record | None:
    """None when the requester has no submitted assignment of that id (any more)."""
    return await conn.fetchrow(
        _APPROVE_ONE, assignment_id, requester_id, feedback, override_window_days
    )


_OVERRIDE = f"""
UPDATE assignments a
SET status = 'approved', feedback = coalesce($4, a.feedback), reviewed_at = now()
WHERE a.id = $1 AND a.requester_id = $2 AND a.status = 'rejected'
RETURNING {_REVIEW_COLUMNS}
"""


async def approve_rejected(
    conn: asyncpg.Connection,
    *,
    requester_id: str,
    assignment_id: str,
    feedback: str | None,
    override_window_days: int,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _OVERRIDE, assignment_id, requester_id, override_window_days, feedback
    )
