"""Work sessions of hourly projects (contract: "Hourly work"): the worker opens one, keeps it
alive, ends it, reads their own; answers a dispute of one. Time is the server's
(services/tasks/clock.py), never the client's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from services.tasks.clock import NowDep, app_clock
from services.tasks.sessions import service
from services.tasks.sessions.schemas import (
    DisputeResponseBody,
    TimesheetDetail,
    WorkSessionRead,
    WorkSessionStatus,
)
from services.tasks.timesheets import service as timesheets
from shared.auth import WorkerDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.hot_path import HotRoute, WorkerCallDep
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(tags=["work sessions"])
# Heartbeat and end: the requests every open session sends, answered without FastAPI's
# per-request dependency solving (shared/hot_path.py, HotRoute). Included into `router` below.
beats = APIRouter(tags=["work sessions"], route_class=HotRoute)


@router.post(
    "/v1/work/projects/{project_id}/sessions",
    operation_id="open_work_session",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkSessionRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="Open a work session in an hourly project (one open session per worker and project)",
    description="Admitted by the rules accept applies: 403 `not_qualified`, `blocked`, "
    "`gold_accuracy_too_low`; 404 `no_work_available` (not published); 409 `not_hourly` (a "
    "per-answer project); 403 `weekly_hours_exhausted` (the worker's hours this ISO week); "
    "409 `budget_exhausted`; 409 `session_already_open` with `session_id`, the open one.",
)
async def open_session(
    project_id: str, caller: WorkerDep, idem: IdempotencyDep, now: NowDep
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.open_session(
            db, worker_id=caller.account_id, project_id=project_id, now=now
        ),
    )


@beats.post(
    "/v1/work/sessions/{session_id}/heartbeat",
    operation_id="heartbeat_work_session",
    response_model=WorkSessionRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="Keep the session alive: an activity event; the time since the last one is paid "
    "if it is at most the idle timeout",
    description="200 with the session; when this event reached the weekly cap or the budget "
    "the session comes back `ended` (`ended_reason` says which). 404 for someone else's; 409 "
    "`session_ended` for an ended or idle session (403 `weekly_hours_exhausted` / 409 "
    "`budget_exhausted` when a limit ended it).",
)
async def heartbeat(session_id: str, call: WorkerCallDep, request: Request) -> Response:
    # Without an Idempotency-Key (what a worker app sends every few seconds) the heartbeat
    # shares one statement with the others in flight (service.coalesced_heartbeat); with one,
    # the hot path's way (shared/hot_path.py): the key row and the event on one connection.
    now = app_clock(request)()
    if call.idempotency_key is None:
        return call.answer(
            await service.coalesced_heartbeat(
                request.app.state.session_events,
                call.database,
                worker_id=call.account_id,
                session_id=session_id,
                now=now,
            )
        )
    return await call.run(
        lambda db: service.heartbeat(db, worker_id=call.account_id, session_id=session_id, now=now)
    )


@beats.post(
    "/v1/work/sessions/{session_id}/end",
    operation_id="end_work_session",
    response_model=WorkSessionRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="End the session: a last activity event, then `ended` (reason `worker`)",
    description="Errors as for the heartbeat.",
)
async def end(session_id: str, call: WorkerCallDep, request: Request) -> Response:
    now = app_clock(request)()
    return await call.run(
        lambda db: service.heartbeat(
            db, worker_id=call.account_id, session_id=session_id, now=now, end=True
        )
    )


@router.get(
    "/v1/work/sessions",
    operation_id="list_my_work_sessions",
    response_model=Page[WorkSessionRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The worker's own work sessions, newest first",
)
async def list_sessions(
    caller: WorkerDep,
    db: ReadDbDep,
    page: PageDep,
    project_id: Annotated[str | None, Query(description="Only this project's.")] = None,
    status_filter: Annotated[
        WorkSessionStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
) -> Page[WorkSessionRead]:
    return await service.list_own_sessions(
        db, worker_id=caller.account_id, page=page, project_id=project_id, status=status_filter
    )


@router.get(
    "/v1/work/sessions/{session_id}",
    operation_id="get_my_work_session",
    response_model=WorkSessionRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="One of the worker's own work sessions",
)
async def get_session(session_id: str, caller: WorkerDep, db: ReadDbDep) -> WorkSessionRead:
    return await service.get_own_session(db, worker_id=caller.account_id, session_id=session_id)


@router.post(
    "/v1/work/sessions/{session_id}/dispute-response",
    operation_id="respond_to_session_dispute",
    response_model=TimesheetDetail,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Answer the requester's dispute of this session (once, while the timesheet is open)",
    description="409 `dispute_not_allowed` (no open dispute, or already answered), "
    "`timesheet_approved`.",
)
async def respond(
    session_id: str, body: DisputeResponseBody, caller: WorkerDep, db: WriteDbDep, now: NowDep
) -> TimesheetDetail:
    return await timesheets.respond_to_dispute(
        db, worker_id=caller.account_id, session_id=session_id, response=body.response, now=now
    )


router.include_router(beats)
