"""Qualification tests and requests (contract: "Workers and qualifications")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.workers.attempts import service
from services.workers.attempts.schemas import (
    AttemptRead,
    AttemptStarted,
    AttemptSubmit,
    QualificationRequestRead,
    RequestAccept,
    RequestReject,
    RequestStatus,
    SubmitResult,
)
from services.workers.clock import NowDep
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(tags=["qualification tests"])


@router.post(
    "/v1/qualification-types/{type_id}/attempts",
    operation_id="start_qualification_attempt",
    status_code=201,
    response_model=AttemptStarted,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Start the test (or request the qualification); 409 retry_not_allowed with "
    "retry_after when a retake is not (yet) allowed",
)
async def start_attempt(type_id: str, caller: WorkerDep, now: NowDep, idem: IdempotencyDep):
    return await idem.run(
        caller,
        lambda db: service.start_attempt(db, worker_id=caller.account_id, type_id=type_id, now=now),
    )


@router.post(
    "/v1/qualification-attempts/{attempt_id}/submit",
    operation_id="submit_qualification_attempt",
    response_model=SubmitResult,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Submit the answers: scored at once with an answer key, else pending review; "
    "409 attempt_expired after the deadline",
)
async def submit_attempt(
    attempt_id: str,
    body: AttemptSubmit,
    caller: WorkerDep,
    now: NowDep,
    idem: IdempotencyDep,
):
    return await idem.run(
        caller,
        lambda db: service.submit_attempt(
            db,
            worker_id=caller.account_id,
            attempt_id=attempt_id,
            answers=body.answers,
            now=now,
        ),
    )


@router.get(
    "/v1/qualification-attempts/{attempt_id}",
    operation_id="get_qualification_attempt",
    response_model=AttemptRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="One of the calling worker's attempts",
)
async def get_attempt(
    attempt_id: str, caller: WorkerDep, db: ReadDbDep, now: NowDep
) -> AttemptRead:
    return await service.get_attempt(
        db, worker_id=caller.account_id, attempt_id=attempt_id, now=now
    )


@router.get(
    "/v1/qualification-types/{type_id}/requests",
    operation_id="list_qualification_requests",
    response_model=Page[QualificationRequestRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Requests to review (owner), newest first; status=pending by default",
)
async def list_requests(
    type_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    now: NowDep,
    status: Annotated[RequestStatus, Query()] = "pending",
) -> Page[QualificationRequestRead]:
    return await service.list_requests(
        db, owner_id=caller.account_id, type_id=type_id, status=status, page=page, now=now
    )


@router.get(
    "/v1/qualification-requests/{request_id}",
    operation_id="get_qualification_request",
    response_model=QualificationRequestRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="One request of one of your types (owner)",
)
async def get_request(
    request_id: str, caller: RequesterDep, db: ReadDbDep, now: NowDep
) -> QualificationRequestRead:
    return await service.get_request(db, owner_id=caller.account_id, request_id=request_id, now=now)


@router.post(
    "/v1/qualification-requests/{request_id}/accept",
    operation_id="accept_qualification_request",
    response_model=QualificationRequestRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Grant the requested qualification with {value} (owner)",
)
async def accept_request(
    request_id: str,
    caller: RequesterDep,
    now: NowDep,
    idem: IdempotencyDep,
    body: RequestAccept | None = None,
):
    value = body.value if body else 1
    return await idem.run(
        caller,
        lambda db: service.accept_request(
            db, owner_id=caller.account_id, request_id=request_id, value=value, now=now
        ),
    )


@router.post(
    "/v1/qualification-requests/{request_id}/reject",
    operation_id="reject_qualification_request",
    response_model=QualificationRequestRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Turn the request down with a {reason} (owner)",
)
async def reject_request(
    request_id: str,
    body: RequestReject,
    caller: RequesterDep,
    now: NowDep,
    idem: IdempotencyDep,
):
    return await idem.run(
        caller,
        lambda db: service.reject_request(
            db, owner_id=caller.account_id, request_id=request_id, reason=body.reason, now=now
        ),
    )
