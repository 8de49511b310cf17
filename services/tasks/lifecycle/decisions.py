"""What the requester's decisions share (approve, reject, override, bulk review): the reviewed
row, the lock every decision starts from, the set-based submitted → approved/rejected
statement, the refusals, and the worker's tally deltas.

Every assignment a call touches is locked first, in id order; then projects and tasks
(slots.lock_for_slot_changes), then per-worker stats: the same order everywhere, so concurrent
reviews, timers and close cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.tasks.lifecycle.assignment import (
    ASSIGNMENT_COLUMNS,
    AssignmentNotFound,
    AssignmentRow,
    HotRows,
)
from shared.database import Writable, WriteDb
from shared.errors import InvalidState

OVERRIDE_WINDOW_DAYS = 30

Action = Literal["approve", "reject"]


class DuplicateItem(InvalidState):
    code = "duplicate_item"


@dataclass(frozen=True, slots=True)
class ReviewRow(AssignmentRow):
    """An assignment as review sees it: the public columns, what a payout needs, and whether a
    rejection is still within the override window (counted from its submission)."""

    requester_id: str
    fee_cents: int
    overridable: bool


REVIEW_ROWS = HotRows(ReviewRow)


def review_columns(window_days: str) -> str:
    """ReviewRow's columns (table alias `a`); `window_days`: the statement's parameter holding
    the override window."""
    return f"""{ASSIGNMENT_COLUMNS}, a.requester_id, a.fee_cents,
    a.submitted_at > now() - make_interval(days => {window_days}) AS overridable"""


REVIEW_COLUMNS = review_columns("$3")

_LOCK = f"""
SELECT {REVIEW_COLUMNS}
FROM assignments a
WHERE a.id = ANY($1::text[]) AND a.requester_id = $2
ORDER BY a.id
FOR UPDATE
"""


async def lock_for_review(
    db: WriteDb, *, requester_id: str, assignment_ids: Sequence[str]
) -> list[ReviewRow]:
    """The requester's assignments among `assignment_ids`, locked in id order (so concurrent
    reviews of overlapping sets cannot deadlock); someone else's are simply absent."""
    return await REVIEW_ROWS.fetch(
        db, _LOCK, list(assignment_ids), requester_id, OVERRIDE_WINDOW_DAYS
    )


async def locked_one(db: WriteDb, *, requester_id: str, assignment_id: str) -> ReviewRow:
    rows = await lock_for_review(db, requester_id=requester_id, assignment_ids=[assignment_id])
    if not rows:
        raise AssignmentNotFound("Assignment not found.")
    return rows[0]


# submitted -> approved/rejected, conditional on the state, for any number of assignments.
# The WHERE re-checks the status on the locked row: of two concurrent approvals of one
# assignment exactly one gets the row back, so the payout is enqueued once.
_DECIDE = f"""
UPDATE assignments a
SET status = $4, feedback = d.feedback, reviewed_at = now()
FROM unnest($1::text[], $2::text[]) AS d(id, feedback)
WHERE a.id = d.id AND a.requester_id = $5 AND a.status = 'submitted'
RETURNING {REVIEW_COLUMNS}
"""


async def decide_submitted(
    db: Writable,
    *,
    requester_id: str,
    decision: Literal["approved", "rejected"],
    ids: Sequence[str],
    feedbacks: Sequence[str | None],
) -> list[ReviewRow]:
    return await REVIEW_ROWS.fetch(
        db, _DECIDE, list(ids), list(feedbacks), OVERRIDE_WINDOW_DAYS, decision, requester_id
    )


def wrong_state(current: ReviewRow, action: Action) -> InvalidState:
    status = current.status
    if action == "approve" and status == "rejected":
        return InvalidState(
            f"A rejected assignment can be approved only within {OVERRIDE_WINDOW_DAYS} days of "
            "its submission."
        )
    return InvalidState(f"Only a submitted assignment can be {action}d; this one is {status}.")


def stats_deltas(
    *,
    approved: Sequence[Any] = (),
    rejected: Sequence[Any] = (),
    overridden: Sequence[Any] = (),
) -> list[tuple[str, str, int, int]]:
    """(project, worker, approved delta, rejected delta) per decided assignment."""
    return (
        [(r.project_id, r.worker_id, 1, 0) for r in approved]
        + [(r.project_id, r.worker_id, 0, 1) for r in rejected]
        + [(r.project_id, r.worker_id, 1, -1) for r in overridden]
    )
