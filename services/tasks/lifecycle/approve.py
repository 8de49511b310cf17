"""Approve: submitted → approved; the slot is consumed (the task completes with its last
approval), the worker's tally counts it, and the worker is paid from the reservation (the
payout message, `pay:{assignment_id}`, committed with the transition; the outbox delivers it).

- Fast path: one statement (APPROVE_ONE_SQL, atomic on its own: no BEGIN/COMMIT), the hot path
  of review (a requester's tool approves a batch one call at a time).
- General path: `record_approvals`, the set-based effects of any number of decided rows (bulk
  review, auto-approve): consume the slots, count the tally, enqueue the payouts.
Both emit the payout of messages.PAYOUT: the fast path's `jsonb_build_object` is generated
from it (messages.payout_sql), the general path builds it with messages.payout_message.

Approving an approved assignment answers 200 with the assignment unchanged (a double click is
not an error, and the money moves once); approving a rejected one is an override
(override.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.gold import service as gold
from services.tasks.lifecycle import override as override_
from services.tasks.lifecycle.assignment import assignment_read
from services.tasks.lifecycle.decisions import (
    OVERRIDE_WINDOW_DAYS,
    REVIEW_ROWS,
    ReviewRow,
    locked_one,
    review_columns,
    stats_deltas,
    wrong_state,
)
from services.tasks.lifecycle.messages import (
    Message,
    enqueue_many,
    payout_message,
    payout_sql,
    tier_release_message,
    tier_release_sql,
)
from services.tasks.lifecycle.slots import consume_slots, consume_slots_sql
from shared.database import Writable, WriteDb, in_transaction
from shared.http import InternalClient

# A single approval in one statement (atomic on its own: no BEGIN/COMMIT), the hot path of
# review. It does what `record_approvals` does for one decided assignment: submitted ->
# approved (the WHERE re-checks the state on the locked row, so of two concurrent approvals one
# gets the row), its slot consumed (the task completes with its last approval), the worker's
# tally in the project, the payout message (generated from messages.PAYOUT), and, with pay
# tiers, the release of what the slot held beyond the assignment's tier (one probe of the
# project row for its slot_cents; nothing is written without tiers).
APPROVE_ONE_SQL = f"""
WITH decided AS (
    UPDATE assignments a
    SET status = 'approved', feedback = $3, reviewed_at = now()
    WHERE a.id = $1 AND a.requester_id = $2 AND a.status = 'submitted'
    RETURNING {review_columns("$4")}
), consumed AS (
    {consume_slots_sql("(SELECT task_id, 1 AS n FROM decided) AS c")}
), tallied AS (
    UPDATE gold_stats g SET approved = g.approved + 1, updated_at = now()
    FROM decided d WHERE g.project_id = d.project_id AND g.worker_id = d.worker_id
), queued AS (
    INSERT INTO outbox (kind, key, payload)
    SELECT {payout_sql("d", source="reserved")}
    FROM decided d
    ON CONFLICT (key) DO NOTHING
), tier_released AS (
    INSERT INTO outbox (kind, key, payload)
    SELECT {tier_release_sql("d", slot_cents="p.slot_cents")}
    FROM decided d JOIN projects p ON p.id = d.project_id
    WHERE p.slot_cents > d.reward_cents + d.fee_cents
    ON CONFLICT (key) DO NOTHING
)
SELECT * FROM decided
"""


async def approve_one(
    db: Writable, *, requester_id: str, assignment_id: str, feedback: str | None
) -> ReviewRow | None:
    """The fast path. None when the requester has no submitted assignment of that id (any
    more)."""
    return await REVIEW_ROWS.fetchrow(
        db, APPROVE_ONE_SQL, assignment_id, requester_id, feedback, OVERRIDE_WINDOW_DAYS
    )


async def record_approvals(
    db: WriteDb, approved: Sequence[Any], *, slots_locked: bool = False, record_stats: bool = True
) -> None:
    """The general path's effects for rows just decided submitted → approved (any rows with
    messages.PAYOUT's columns): what APPROVE_ONE_SQL does for one. `slots_locked`: the caller
    holds the task rows (slots.lock_for_slot_changes); `record_stats=False`: the caller counts
    the tally with its other decisions (bulk review, one statement, the global lock order)."""
    if not approved:
        return
    await consume_slots(db, [r.task_id for r in approved], locked=slots_locked)
    if record_stats:
        await gold.record_decisions(db, stats_deltas(approved=approved))
    payouts = [payout_message(r, source="reserved") for r in approved]
    await enqueue_many(db, payouts + await _tier_releases(db, approved))


_SLOT_CENTS_SQL = "SELECT id, slot_cents FROM projects WHERE id = ANY($1::text[])"


async def _tier_releases(db: Writable, approved: Sequence[Any]) -> list[Message]:
    """What APPROVE_ONE_SQL's `tier_released` writes, for the general path's rows."""
    project_ids = sorted({r.project_id for r in approved})
    slot_cents = {r["id"]: r["slot_cents"] for r in await db.fetch(_SLOT_CENTS_SQL, project_ids)}
    releases = (tier_release_message(r, slot_cents=slot_cents[r.project_id]) for r in approved)
    return [m for m in releases if m is not None]


async def approve(
    db: Writable,
    *,
    payments: InternalClient,
    requester_id: str,
    assignment_id: str,
    feedback: str | None,
) -> AssignmentRead:
    """A submitted assignment is approved by one statement (the fast path); anything else (a
    replay of an approval, an override of a rejection, a refusal) looks at the locked row in a
    transaction."""
    approved = await approve_one(
        db, requester_id=requester_id, assignment_id=assignment_id, feedback=feedback
    )
    if approved is not None:
        return assignment_read(approved)
    async with in_transaction(db) as tx:
        current = await locked_one(tx, requester_id=requester_id, assignment_id=assignment_id)
        if current.status == "submitted":  # submitted since the first look
            approved = await approve_one(  # the row is locked: it is approved now
                tx, requester_id=requester_id, assignment_id=assignment_id, feedback=feedback
            )
            assert approved is not None
            return assignment_read(approved)
        if current.status == "approved":
            return assignment_read(current)
        if current.status != "rejected":
            raise wrong_state(current, "approve")
        overridden = await override_.override(
            tx, payments=payments, current=current, feedback=feedback
        )
        return assignment_read(overridden)
