"""The requester's review: approve (pays the worker), reject (the slot reopens), in bulk.

- Normal approval (submitted → approved) moves money through the outbox: the transition, the
  slot's consumption and the payout message (`pay:{assignment_id}`, from the reservation)
  commit together, and the deliverer sends the payout after the commit.
- Override (rejected → approved within `OVERRIDE_WINDOW_DAYS` of submission) pays synchronously
  from the requester's available balance: the rejected slot's reservation already went back to
  the reopened slot, so this money must exist now (402 leaves the assignment rejected).
- Approving an approved assignment, or rejecting a rejected one, answers 200 with the
  assignment unchanged: a double click (or two tabs) is not an error, and the state transition
  is conditional (`WHERE status = 'submitted'`) so the money moves once either way.
- Every assignment a call touches is locked first, in id order; then projects and tasks
  (slots.lock_for_slot_changes), then per-worker stats: the same order everywhere, so concurrent
  reviews, timers and close cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from services.tasks import slots
from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.assignments.service import AssignmentNotFound, assignment_read
from services.tasks.gold import service as gold
from services.tasks.outbox.service import Message, enqueue_many
from services.tasks.review import repository
from services.tasks.review.schemas import (
    BulkReviewBody,
    BulkReviewResult,
    ReviewAction,
    ReviewItemResult,
)
from shared.db import atomic, driver_connection
from shared.errors import AppError, InvalidState
from shared.http import InternalClient

OVERRIDE_WINDOW_DAYS = 30


class DuplicateItem(InvalidState):
    code = "duplicate_item"


def payout_message(row: asyncpg.Record, *, source: str) -> Message:
    """The payments call for an approved assignment; the key makes it happen once."""
    return Message(
        kind="payout",
        key=f"pay:{row['id']}",
        payload={
            "requester_id": row["requester_id"],
            "project_id": row["project_id"],
            "task_id": row["task_id"],
            "assignment_id": row["id"],
            "worker_id": row["worker_id"],
            "reward_cents": row["reward_cents"],
            "fee_cents": row["fee_cents"],
            "source": source,
        },
    )


async def approve(
    conn: asyncpg.Connection,
    *,
    payments: InternalClient,
    requester_id: str,
    assignment_id: str,
    feedback: str | None,
) -> AssignmentRead:
    """A submitted assignment is approved by one statement (repository.approve_submitted);
    anything else (a replay of an approval, an override of a rejection, a refusal) looks at the
    locked row in a transaction."""

    async def approve_if_submitted() -> asyncpg.Record | None:
        return await repository.approve_submitted(
            conn,
            requester_id=requester_id,
            assignment_id=assignment_id,
            feedback=feedback,
            override_window_days=OVERRIDE_WINDOW_DAYS,
        )

    approved = await approve_if_submitted()
    if approved is not None:
        return assignment_read(approved)
    async with atomic(conn):
        current = await _locked_one(conn, requester_id=requester_id, assignment_id=assignment_id)
        if current["status"] == "submitted":  # submitted since the first look
            approved = await approve_if_submitted()  # the row is locked: it is approved now
            assert approved is not None
            return assignment_read(approved)
        if current["status"] == "approved":
            return assignment_read(current)
        if current["status"] != "rejected":
            raise _wrong_state(current, "approve")
        overridden = await _override(conn, payments=payments, current=current, feedback=feedback)
        return assignment_read(overridden)


async def reject(
    conn: asyncpg.Connection, *, requester_id: str, assignment_id: str, feedback: str
) -> AssignmentRead:
    async with atomic(conn):
        return await _reject(
            conn, requester_id=requester_id, assignment_id=assignment_id, feedback=feedback
        )


async def _reject(
    conn: asyncpg.Connection, *, requester_id: str, assignment_id: str, feedback: str
) -> AssignmentRead:
    rejected = await repository.decide_submitted(
        conn,
        requester_id=requester_id,
        decision="rejected",
        ids=[assignment_id],
        feedbacks=[feedback],
        override_window_days=OVERRIDE_WINDOW_DAYS,
    )
    if rejected:
        await slots.give_back_slots(conn, _slot_returns(rejected))
        await gold.record_decisions(conn, _stats_deltas(rejected=rejected))
        return assignment_read(rejected[0])
    current = await _locked_one(conn, requester_id=requester_id, assignment_id=assignment_id)
    if current["status"] == "rejected":
        return assignment_read(current)
    raise _wrong_state(current, "reject")


async def _locked_one(
    conn: asyncpg.Connection, *, requester_id: str, assignment_id: str
) -> asyncpg.Record:
    rows = await repository.lock_for_review(
        conn,
        requester_id=requester_id,
        assignment_ids=[assignment_id],
        override_window_days=OVERRIDE_WINDOW_DAYS,
    )
    if not rows:
        raise AssignmentNotFound("Assignment not found.")
    return rows[0]


def _wrong_state(current: asyncpg.Record, action: ReviewAction) -> InvalidState:
    status = current["status"]
    if action == "approve" and status == "rejected":
        return InvalidState(
            f"A rejected assignment can be approved only within {OVERRIDE_WINDOW_DAYS} days of "
            "its submission."
        )
    return InvalidState(f"Only a submitted assignment can be {action}d; this one is {status}.")


async def _override(
    conn: asyncpg.Connection,
    *,
    payments: InternalClient,
    current: asyncpg.Record,
    feedback: str | None,
    record_stats: bool = True,
) -> asyncpg.Record:
    """rejected → approved, paid now from the requester's available balance.

    The payments call is the last step: a 402 or an unreachable payments service raises and the
    caller's transaction (or savepoint) rolls the transition back. Payments acts once per key,
    so a retry after a commit that failed pays nothing twice. Bulk review records the stats of
    all its items at the end instead (`record_stats=False`), keeping the global lock order.
    """
    if not current["overridable"]:
        raise _wrong_state(current, "approve")
    row = await repository.approve_rejected(
        conn,
        requester_id=current["requester_id"],
        assignment_id=current["id"],
        feedback=feedback,
        override_window_days=OVERRIDE_WINDOW_DAYS,
    )
    assert row is not None  # the row is locked and was rejected
    if record_stats:
        await gold.record_decisions(conn, _stats_deltas(overridden=[row]))
    message = payout_message(row, source="available")
    await payments.post("/internal/payouts", json={**message.payload, "key": message.key})
    return row


def _slot_returns(rejected: Sequence[asyncpg.Record]) -> list[slots.SlotReturn]:
    return [
        slots.SlotReturn(
            task_id=r["task_id"], project_id=r["project_id"], release_key=f"release:slot:{r['id']}"
        )
        for r in rejected
    ]


def _stats_deltas(
    *,
    approved: Sequence[asyncpg.Record] = (),
    rejected: Sequence[asyncpg.Record] = (),
    overridden: Sequence[asyncpg.Record] = (),
) -> list[tuple[str, str, int, int]]:
    """(project, worker, approved delta, rejected delta) per decided assignment."""
    return (
        [(r["project_id"], r["worker_id"], 1, 0) for r in approved]
        + [(r["project_id"], r["worker_id"], 0, 1) for r in rejected]
        + [(r["project_id"], r["worker_id"], 1, -1) for r in overridden]
    )


@dataclass
class _Item:
    index: int
    id: str
    action: ReviewAction
    feedback: str | None


async def review_many(
    session: AsyncSession,
    *,
    payments: InternalClient,
    requester_id: str,
    body: BulkReviewBody,
) -> BulkReviewResult:
    """Each item succeeds or fails on its own; results come back in request order.

    Set-based: one lock statement for all assignments, one transition per action, one slot
    update, one stats update and one outbox insert for the whole batch. Only overrides go one by
    one (each is a synchronous payment, in a savepoint so a 402 fails that item alone).
    """
    conn = await driver_connection(session)
    items = [_Item(i, a.id, "approve", a.feedback) for i, a in enumerate(body.approve)] + [
        _Item(len(body.approve) + i, r.id, "reject", r.feedback) for i, r in enumerate(body.reject)
    ]
    results: list[ReviewItemResult | None] = [None] * len(items)

    def fail(item: _Item, err: AppError, assignment_status: str | None = None) -> None:
        results[item.index] = ReviewItemResult(
            id=item.id,
            action=item.action,
            status="error",
            code=err.code,
            detail=err.detail,
            assignment_status=assignment_status,
        )

    def ok(item: _Item, assignment_status: str) -> None:
        results[item.index] = ReviewItemResult(
            id=item.id, action=item.action, status="ok", assignment_status=assignment_status
        )

    locked = {
        r["id"]: r
        for r in await repository.lock_for_review(
            conn,
            requester_id=requester_id,
            assignment_ids=sorted({i.id for i in items}),
            override_window_days=OVERRIDE_WINDOW_DAYS,
        )
    }
    seen: set[str] = set()
    to_approve: list[_Item] = []
    to_reject: list[_Item] = []
    to_override: list[_Item] = []
    for item in items:
        current = locked.get(item.id)
        if item.id in seen:
            fail(item, DuplicateItem("This assignment appears earlier in the same request."))
            continue
        seen.add(item.id)
        if current is None:
            fail(item, AssignmentNotFound("Assignment not found."))
        elif current["status"] == "submitted":
            (to_approve if item.action == "approve" else to_reject).append(item)
        elif current["status"] == ("approved" if item.action == "approve" else "rejected"):
            ok(item, current["status"])  # already done: nothing moves twice
        elif (
            item.action == "approve" and current["status"] == "rejected" and current["overridable"]
        ):
            to_override.append(item)
        else:
            fail(item, _wrong_state(current, item.action), current["status"])

    overridden: list[asyncpg.Record] = []
    for item in to_override:
        try:
            async with conn.transaction():  # a savepoint: a refused payment undoes this item only
                row = await _override(
                    conn,
                    payments=payments,
                    current=locked[item.id],
                    feedback=item.feedback,
                    record_stats=False,
                )
        except AppError as err:
            fail(item, err, "rejected")
        else:
            overridden.append(row)
            ok(item, "approved")

    approved = await _decide(conn, requester_id, "approved", to_approve)
    rejected = await _decide(conn, requester_id, "rejected", to_reject)
    projects = await slots.lock_for_slot_changes(
        conn,
        project_ids=[r["project_id"] for r in rejected],
        task_ids=[r["task_id"] for r in (*approved, *rejected)],
    )
    await slots.consume_slots(conn, [r["task_id"] for r in approved], locked=True)
    await slots.give_back_slots(conn, _slot_returns(rejected), locked_projects=projects)
    await gold.record_decisions(
        conn, _stats_deltas(approved=approved, rejected=rejected, overridden=overridden)
    )
    await enqueue_many(conn, [payout_message(r, source="reserved") for r in approved])
    for item in (*to_approve, *to_reject):
        ok(item, "approved" if item.action == "approve" else "rejected")
    return BulkReviewResult(results=[r for r in results if r is not None])


async def _decide(
    conn: asyncpg.Connection, requester_id: str, decision: str, items: Sequence[_Item]
) -> list[asyncpg.Record]:
    if not items:
        return []
    rows = await repository.decide_submitted(
        conn,
        requester_id=requester_id,
        decision=decision,
        ids=[i.id for i in items],
        feedbacks=[i.feedback for i in items],
        override_window_days=OVERRIDE_WINDOW_DAYS,
    )
    # Every item here was locked as submitted, so each transition happened.
    assert len(rows) == len(items), (len(rows), len(items))
    return rows
