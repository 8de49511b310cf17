"""Review of submitted work by the project's owner: approve, reject, bulk.

Approvals enqueue payouts; once the response is out (the transaction committed) this process's
outbox deliverer is woken, so the worker is normally paid within milliseconds. Single approve and
reject are hot paths (a requester's tool approves a batch one call at a time): they run on the
hot pool in autocommit (shared.hot_path). The transitions live in services/tasks/lifecycle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import Response

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.clock import NowDep
from services.tasks.lifecycle import approve as approve_
from services.tasks.lifecycle import bulk_review
from services.tasks.lifecycle import reject as reject_
from services.tasks.outbox.service import wake_after_commit
from services.tasks.review.schemas import (
    ApproveBody,
    BulkReviewBody,
    BulkReviewResult,
    RejectBody,
)
from shared.auth import RequesterDep
from shared.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InsufficientFunds,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.hot_path import RequesterCallDep
from shared.idempotency import IdempotencyDep

router = APIRouter(tags=["review"])


async def rejection_cap(request: Request, now: NowDep) -> reject_.RejectionCap:
    """Today's place in the daily rejection cap: the UTC day by the service's clock."""
    return reject_.RejectionCap.at(
        now, request.app.state.settings.rejections_counted_per_requester_per_day
    )


RejectionCapDep = Annotated[reject_.RejectionCap, Depends(rejection_cap)]


@router.post(
    "/v1/assignments/review",
    operation_id="review_assignments",
    response_model=BulkReviewResult,
    responses=error_responses(Unauthorized, Forbidden, Conflict, ValidationFailed),
    summary="Approve and reject up to 1,000 assignments; each item succeeds or fails alone",
)
async def review_many(
    body: BulkReviewBody,
    caller: RequesterDep,
    idem: IdempotencyDep,
    cap: RejectionCapDep,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    wake_after_commit(request, background)
    return await idem.run(
        caller,
        lambda db: bulk_review.review_many(
            db,
            payments=request.app.state.peers["payments"],
            requester_id=caller.account_id,
            body=body,
            cap=cap,
        ),
    )


@router.post(
    "/v1/assignments/{assignment_id}/approve",
    operation_id="approve_assignment",
    response_model=AssignmentRead,
    responses=error_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        ValidationFailed,
        InsufficientFunds,
        DependencyUnavailable,
    ),
    summary="submitted → approved (or rejected → approved within 30 days); pays the worker",
    description="Approving an already approved assignment answers 200 and pays nothing again. "
    "Overriding a rejection pays from the available balance: 402 `insufficient_funds` if "
    "short, 503 if payments is unreachable (nothing changes either way).",
)
async def approve(
    assignment_id: str,
    call: RequesterCallDep,
    request: Request,
    background: BackgroundTasks,
    body: ApproveBody | None = None,
) -> Response:
    wake_after_commit(request, background)
    return await call.run(
        lambda db: approve_.approve(
            db,
            payments=request.app.state.peers["payments"],
            requester_id=call.account_id,
            assignment_id=assignment_id,
            feedback=body.feedback if body else None,
        ),
    )


@router.post(
    "/v1/assignments/{assignment_id}/reject",
    operation_id="reject_assignment",
    response_model=AssignmentRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="submitted → rejected; the slot reopens for another worker",
    description="`feedback` (at least 10 characters) tells the worker why. Rejecting an "
    "already rejected assignment answers 200 and changes nothing. Of the rejections one "
    "requester gives one worker in one UTC day only the first "
    "`TASKS_REJECTIONS_COUNTED_PER_REQUESTER_PER_DAY` (default 5) count toward the worker's "
    "approval rate and level; the worker may appeal a rejection within 14 days.",
)
async def reject(
    assignment_id: str,
    body: RejectBody,
    call: RequesterCallDep,
    cap: RejectionCapDep,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    # A rejection in a closed project or of an expired task releases the slot's money.
    wake_after_commit(request, background)
    return await call.run(
        lambda db: reject_.reject(
            db,
            requester_id=call.account_id,
            assignment_id=assignment_id,
            feedback=body.feedback,
            cap=cap,
        ),
    )
