"""The work queue (contract: "Projects, tasks, assignments"): accept, submit, return, lists.

Every POST here takes `Idempotency-Key`: a worker app retrying after a timeout gets the first
answer again (the same assignment, not a second one). Accept, submit and return are the site's
busiest requests: they run on the hot pool in autocommit (`call.run`, on a connection taken
for the action only), with the caller and the key resolved by one dependency (shared.hot_path);
accept, which needs nothing else, by HotRoute without FastAPI's dependency solving. The
transitions themselves live in services/tasks/lifecycle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, status
from fastapi.responses import Response

from services.tasks.assignments import service
from services.tasks.assignments.schemas import (
    AcceptedAssignment,
    AssignmentRead,
    AssignmentStatus,
    SubmitBody,
    WorkerAssignmentRead,
)
from services.tasks.clock import app_clock
from services.tasks.lifecycle import accept as accept_
from services.tasks.lifecycle import give_back
from services.tasks.lifecycle import submit as submit_
from services.tasks.outbox.service import wake_after_commit
from services.tasks.training.schemas import SubmittedAssignment
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.hot_path import HotRoute, WorkerCallDep
from shared.pagination import Page, PageDep

router = APIRouter(tags=["assignments"])
# Accept takes only its path, the worker and the Request: answered without FastAPI's
# per-request dependency solving (shared/hot_path.py, HotRoute). Included into `router` below.
queue = APIRouter(tags=["assignments"], route_class=HotRoute)

StatusFilter = Annotated[
    AssignmentStatus | None, Query(alias="status", description="Only this status.")
]


@queue.post(
    "/v1/work/projects/{project_id}/accept",
    operation_id="accept_work",
    status_code=status.HTTP_201_CREATED,
    response_model=AcceptedAssignment,
    responses=error_responses(
        Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed, RateLimited
    ),
    summary="Claim the next task of the project this worker has not answered",
    description="403 `not_qualified` (with `unmet_requirements`), `blocked` or "
    "`gold_accuracy_too_low`; 404 `no_work_available` (also for a project that is not "
    "published). Hourly projects: needs the worker's open work session (409 "
    "`work_session_required`) and counts as its activity; 403 `weekly_hours_exhausted`, 409 "
    "`budget_exhausted` once a limit ended it.",
)
async def accept(project_id: str, call: WorkerCallDep, request: Request) -> Response:
    return await call.run(
        lambda db: accept_.accept(
            db,
            worker_id=call.account_id,
            project_id=project_id,
            accepted=request.app.state.accepted_assignments,
            clock=app_clock(request),
        ),
    )


@router.post(
    "/v1/assignments/{assignment_id}/submit",
    operation_id="submit_assignment",
    response_model=SubmittedAssignment,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
    summary="Submit the answer of an accepted assignment (holder only)",
    description="422 when the answer does not fit the project's answer schema (the assignment "
    "stays open); 409 `assignment_expired` after the deadline; 409 `invalid_state` otherwise. "
    "Hourly projects: needs the worker's open work session (409 `work_session_required`) and "
    "counts as its activity. Training projects: the answer is approved at once and the "
    "response carries `training` (the grade, the expected answer, its explanation, progress).",
)
async def submit(
    assignment_id: str,
    body: SubmitBody,
    call: WorkerCallDep,
    request: Request,
) -> Response:
    return await call.run(
        lambda db: submit_.submit(
            db,
            worker_id=call.account_id,
            assignment_id=assignment_id,
            answer=body.answer,
            accepted=request.app.state.accepted_assignments,
            clock=app_clock(request),
        ),
    )


@router.post(
    "/v1/assignments/{assignment_id}/return",
    response_model=AssignmentRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict),
    summary="Give an accepted task back to the pool at once (holder only)",
)
async def return_assignment(
    assignment_id: str,
    call: WorkerCallDep,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    # In a closed project (or an expired task) the slot's money is released instead.
    wake_after_commit(request, background)
    return await call.run(
        lambda db: give_back.return_assignment(
            db, worker_id=call.account_id, assignment_id=assignment_id
        ),
    )


@router.get(
    "/v1/workers/me/assignments",
    response_model=Page[WorkerAssignmentRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The worker's own assignments, newest first",
)
async def list_my_assignments(
    caller: WorkerDep, db: ReadDbDep, page: PageDep, status_filter: StatusFilter = None
) -> Page[WorkerAssignmentRead]:
    return await service.list_for_worker(
        db, worker_id=caller.account_id, status=status_filter, page=page
    )


@router.get(
    "/v1/projects/{project_id}/assignments",
    response_model=Page[AssignmentRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="A project's assignments, newest first (`?status=submitted`: work to review)",
)
async def list_project_assignments(
    project_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    status_filter: StatusFilter = None,
) -> Page[AssignmentRead]:
    return await service.list_for_project(
        db,
        requester_id=caller.account_id,
        project_id=project_id,
        status=status_filter,
        page=page,
    )


router.include_router(queue)
