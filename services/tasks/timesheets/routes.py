"""Timesheets of hourly projects (contract: "Hourly work"): the requester's review (list,
read, approve, dispute a session, withdraw a dispute) and the worker's own timesheets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import Response

from services.tasks.clock import NowDep
from services.tasks.outbox.service import wake_after_commit
from services.tasks.projects.service import load_project
from services.tasks.sessions.schemas import (
    DisputeBody,
    TimesheetDetail,
    TimesheetRead,
    TimesheetStatus,
)
from services.tasks.timesheets import service
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep, WriteDbDep
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

router = APIRouter(tags=["timesheets"])

StatusFilter = Annotated[
    TimesheetStatus | None, Query(alias="status", description="Only this status.")
]


@router.get(
    "/v1/projects/{project_id}/timesheets",
    operation_id="list_project_timesheets",
    response_model=Page[TimesheetRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="An hourly project's timesheets (one per worker and ISO week), newest first",
)
async def list_project_timesheets(
    project_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    status_filter: StatusFilter = None,
) -> Page[TimesheetRead]:
    await load_project(db, requester_id=caller.account_id, project_id=project_id)
    return await service.list_for_project(
        db, project_id=project_id, page=page, status=status_filter
    )


@router.get(
    "/v1/projects/{project_id}/timesheets/{timesheet_id}",
    operation_id="get_project_timesheet",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="One timesheet of the project, with its work sessions",
)
async def get_project_timesheet(
    project_id: str, timesheet_id: str, caller: RequesterDep, db: ReadDbDep
) -> TimesheetDetail:
    return await service.get_for_requester(
        db, requester_id=caller.account_id, project_id=project_id, timesheet_id=timesheet_id
    )


@router.post(
    "/v1/projects/{project_id}/timesheets/{timesheet_id}/approve",
    operation_id="approve_timesheet",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="Approve the timesheet: pays its undisputed time x hourly_rate (once)",
    description="Pays through the outbox like an assignment approval, exactly once: approving "
    "an approved timesheet answers it again and pays nothing. Sessions whose dispute is still "
    "open are not paid (their dispute becomes `upheld`). 409 `timesheet_not_final` while its "
    "week runs (unless the project is closed) or a session of it is open.",
)
async def approve_timesheet(
    project_id: str,
    timesheet_id: str,
    caller: RequesterDep,
    idem: IdempotencyDep,
    now: NowDep,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    wake_after_commit(request, background)
    return await idem.run(
        caller,
        lambda db: service.approve_as_requester(
            db,
            requester_id=caller.account_id,
            project_id=project_id,
            timesheet_id=timesheet_id,
            now=now,
        ),
    )


@router.post(
    "/v1/projects/{project_id}/timesheets/{timesheet_id}/sessions/{session_id}/dispute",
    operation_id="dispute_work_session",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Dispute one ended session of an open timesheet: its time is not paid unless the "
    "dispute is withdrawn",
    description="409 `dispute_not_allowed` (the session is open or was disputed before), "
    "`timesheet_approved`.",
)
async def dispute_session(
    project_id: str,
    timesheet_id: str,
    session_id: str,
    body: DisputeBody,
    caller: RequesterDep,
    db: WriteDbDep,
    now: NowDep,
) -> TimesheetDetail:
    return await service.dispute_session(
        db,
        requester_id=caller.account_id,
        project_id=project_id,
        timesheet_id=timesheet_id,
        session_id=session_id,
        reason=body.reason,
        now=now,
    )


@router.post(
    "/v1/projects/{project_id}/timesheets/{timesheet_id}/sessions/{session_id}/withdraw-dispute",
    operation_id="withdraw_session_dispute",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="Withdraw the dispute of a session: its time is paid with the timesheet",
    description="409 `dispute_not_allowed` (no open dispute), `timesheet_approved`.",
)
async def withdraw_dispute(
    project_id: str,
    timesheet_id: str,
    session_id: str,
    caller: RequesterDep,
    db: WriteDbDep,
    now: NowDep,
) -> TimesheetDetail:
    return await service.withdraw_dispute(
        db,
        requester_id=caller.account_id,
        project_id=project_id,
        timesheet_id=timesheet_id,
        session_id=session_id,
        now=now,
    )


@router.get(
    "/v1/work/timesheets",
    operation_id="list_my_timesheets",
    response_model=Page[TimesheetRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The worker's own timesheets, newest first",
)
async def list_my_timesheets(
    caller: WorkerDep, db: ReadDbDep, page: PageDep, status_filter: StatusFilter = None
) -> Page[TimesheetRead]:
    return await service.list_for_worker(
        db, worker_id=caller.account_id, page=page, status=status_filter
    )


@router.get(
    "/v1/work/timesheets/{timesheet_id}",
    operation_id="get_my_timesheet",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="One of the worker's own timesheets, with its work sessions",
)
async def get_my_timesheet(timesheet_id: str, caller: WorkerDep, db: ReadDbDep) -> TimesheetDetail:
    return await service.get_for_worker(db, worker_id=caller.account_id, timesheet_id=timesheet_id)
