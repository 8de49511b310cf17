"""SQL for review: state transitions of a requester's assignments, single or set-based."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.tasks.assignments.repository import ASSIGNMENT_COLUMNS

# Everything review needs besides the public columns; `overridable` says whether a rejected
# assignment is still within the override window (counted from its submission).
_REVIEW_COLUMNS = f"""{ASSIGNMENT_COLUMNS}, a.requester_id, a.fee_cents,
    a.submitted_at > now() - make_interval(days => $3) AS overridable"""

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
