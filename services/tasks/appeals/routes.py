"""Appeals of rejections (contract: "Fair review"): the worker appeals, the requester lists,
overturns or upholds; both parties read the appeal. An appeal is addressed by its assignment
(one appeal per assignment)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.tasks.appeals import service
from services.tasks.appeals.schemas import (
    AppealBody,
    AppealRead,
    AppealStatus,
    OverturnBody,
    UpholdBody,
)
from services.tasks.clock import NowDep
from services.tasks.projects.service import load_project
from shared.auth import CallerDep, RequesterDep, WorkerDep
from shared.database import ReadDbDep, WriteDbDep
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
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(tags=["appeals"])

StatusFilter = Annotated[
    AppealStatus | None, Query(alias="status", description="Only this status (e.g. open).")
]
ProjectFilter = Annotated[
    str | None,
    Query(max_length=64, description="Only this project's appeals (404 if not yours)."),
]


@router.post(
    "/v1/assignments/{assignment_id}/appeal",
    operation_id="appeal_assignment",
    status_code=201,
    response_model=AppealRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Appeal a rejection of your assignment, once, within 14 days of it",
    description="409 `appeal_exists` (appealed before), `invalid_state` (not rejected), "
    "`appeal_window_closed` (more than 14 days after the rejection). Someone else's "
    "assignment is 404.",
)
async def appeal_assignment(
    assignment_id: str,
    body: AppealBody,
    caller: WorkerDep,
    idem: IdempotencyDep,
    now: NowDep,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.appeal(
            db,
            worker_id=caller.account_id,
            assignment_id=assignment_id,
            message=body.message,
            now=now,
        ),
    )


@router.get(
    "/v1/assignments/{assignment_id}/appeal",
    operation_id="get_appeal",
    response_model=AppealRead,
    responses=error_responses(Unauthorized, NotFound),
    summary="The appeal of an assignment: the worker's own, or one of the requester's",
)
async def get_appeal(assignment_id: str, caller: CallerDep, db: ReadDbDep) -> AppealRead:
    party = (
        {"worker_id": caller.account_id}
        if caller.kind == "worker"
        else {"requester_id": caller.account_id}
    )
    return await service.get_appeal(db, assignment_id=assignment_id, **party)


@router.post(
    "/v1/assignments/{assignment_id}/appeal/overturn",
    operation_id="overturn_appeal",
    response_model=AppealRead,
    responses=error_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        ValidationFailed,
        InsufficientFunds,
        DependencyUnavailable,
    ),
    summary="Overturn the appeal: the rejection becomes an approval, paid like an override",
    description="Pays the reward (and fee) from the available balance, as approving a "
    "rejected assignment does, also past that 30-day window: 402 `insufficient_funds` or 503 "
    "leave everything as it was. Overturning an overturned appeal (or one whose assignment was "
    "approved directly) answers 200 and pays nothing again. 409 `appeal_decided` if upheld.",
)
async def overturn_appeal(
    assignment_id: str,
    caller: RequesterDep,
    idem: IdempotencyDep,
    request: Request,
    body: OverturnBody | None = None,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.overturn(
            db,
            payments=request.app.state.peers["payments"],
            requester_id=caller.account_id,
            assignment_id=assignment_id,
            feedback=body.feedback if body else None,
        ),
    )


@router.post(
    "/v1/assignments/{assignment_id}/appeal/uphold",
    operation_id="uphold_appeal",
    response_model=AppealRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Uphold the appeal with a reason: the rejection stands",
    description="Upholding an upheld appeal answers 200 unchanged; 409 `appeal_decided` if "
    "overturned.",
)
async def uphold_appeal(
    assignment_id: str, body: UpholdBody, caller: RequesterDep, db: WriteDbDep
) -> AppealRead:
    return await service.uphold(
        db, requester_id=caller.account_id, assignment_id=assignment_id, reason=body.reason
    )


@router.get(
    "/v1/assignments/appeals",
    operation_id="list_appeals",
    response_model=Page[AppealRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Appeals of the requester's rejections, all projects or one, newest first",
)
async def list_appeals(
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    status_filter: StatusFilter = None,
    project_id: ProjectFilter = None,
) -> Page[AppealRead]:
    if project_id is not None:
        await load_project(db, requester_id=caller.account_id, project_id=project_id)
    return await service.list_appeals(
        db,
        page=page,
        requester_id=caller.account_id,
        project_id=project_id,
        status=status_filter,
    )


@router.get(
    "/v1/work/appeals",
    operation_id="list_my_appeals",
    response_model=Page[AppealRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The worker's own appeals and their state, newest first",
)
async def list_my_appeals(
    caller: WorkerDep, db: ReadDbDep, page: PageDep, status_filter: StatusFilter = None
) -> Page[AppealRead]:
    return await service.list_appeals(
        db, page=page, worker_id=caller.account_id, status=status_filter
    )
