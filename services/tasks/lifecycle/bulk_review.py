"""Bulk review: up to 1,000 approvals and rejections in one call, each item succeeding or
failing on its own, results in request order.

Set-based, through the transitions' general paths: one lock statement for all assignments
(decisions.lock_for_review), one transition per action (decisions.decide_submitted; the
rejections through reject.reject_submitted, which applies the daily rejection cap), the
slots' locks once (slots.lock_for_slot_changes), the rejected slots given back
(reject.give_back), the approvals' effects and payouts (approve.record_approvals), and one
stats update for every decision. Only overrides go one by one (each is a synchronous payment,
in a savepoint so a 402 fails that item alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.tasks.assignments.schemas import AssignmentStatus
from services.tasks.gold import service as gold
from services.tasks.lifecycle import override as override_
from services.tasks.lifecycle import reject as reject_
from services.tasks.lifecycle.approve import record_approvals
from services.tasks.lifecycle.assignment import AssignmentNotFound
from services.tasks.lifecycle.decisions import (
    DuplicateItem,
    ReviewRow,
    decide_submitted,
    lock_for_review,
    stats_deltas,
    wrong_state,
)
from services.tasks.lifecycle.slots import lock_for_slot_changes
from services.tasks.review.schemas import (
    BulkReviewBody,
    BulkReviewResult,
    ReviewAction,
    ReviewItemResult,
)
from shared.database import WriteDb
from shared.errors import AppError
from shared.http import InternalClient


@dataclass
class _Item:
    index: int
    id: str
    action: ReviewAction
    feedback: str | None


async def review_many(
    db: WriteDb,
    *,
    payments: InternalClient,
    requester_id: str,
    body: BulkReviewBody,
    cap: reject_.RejectionCap,
) -> BulkReviewResult:
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

    def ok(item: _Item, assignment_status: AssignmentStatus) -> None:
        results[item.index] = ReviewItemResult(
            id=item.id, action=item.action, status="ok", assignment_status=assignment_status
        )

    locked = {
        r.id: r
        for r in await lock_for_review(
            db, requester_id=requester_id, assignment_ids=sorted({i.id for i in items})
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
        elif current.status == "submitted":
            (to_approve if item.action == "approve" else to_reject).append(item)
        elif current.status == ("approved" if item.action == "approve" else "rejected"):
            ok(item, current.status)  # type: ignore[arg-type]  # already done: nothing moves twice
        elif item.action == "approve" and current.status == "rejected" and current.overridable:
            to_override.append(item)
        else:
            fail(item, wrong_state(current, item.action), current.status)

    overridden: list[ReviewRow] = []
    for item in to_override:
        try:
            async with db.savepoint():  # a refused payment undoes this item only
                row = await override_.override(
                    db,
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

    approved = await _decide(db, requester_id, "approved", to_approve)
    rejected = (
        await reject_.reject_submitted(
            db,
            requester_id=requester_id,
            ids=[i.id for i in to_reject],
            feedbacks=[i.feedback for i in to_reject],
            cap=cap,
        )
        if to_reject
        else []
    )
    # Every item here was locked as submitted, so each transition happened.
    assert len(rejected) == len(to_reject), (len(rejected), len(to_reject))
    projects = await lock_for_slot_changes(
        db,
        project_ids=[r.project_id for r in rejected],
        task_ids=[r.task_id for r in (*approved, *rejected)],
    )
    await reject_.give_back(db, rejected, locked_projects=projects)
    await record_approvals(db, approved, slots_locked=True, record_stats=False)
    await gold.record_decisions(
        db, stats_deltas(approved=approved, rejected=rejected, overridden=overridden)
    )
    for item in (*to_approve, *to_reject):
        ok(item, "approved" if item.action == "approve" else "rejected")
    return BulkReviewResult(results=[r for r in results if r is not None])


async def _decide(
    db: WriteDb,
    requester_id: str,
    decision: Literal["approved", "rejected"],
    items: Sequence[_Item],
) -> list[ReviewRow]:
    if not items:
        return []
    rows = await decide_submitted(
        db,
        requester_id=requester_id,
        decision=decision,
        ids=[i.id for i in items],
        feedbacks=[i.feedback for i in items],
    )
    # Every item here was locked as submitted, so each transition happened.
    assert len(rows) == len(items), (len(rows), len(items))
    return rows
