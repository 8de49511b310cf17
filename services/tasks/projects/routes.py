"""Projects: create, read, edit, and the publish / pause / resume / close state machine."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, status
from fastapi.responses import Response

from services.tasks.lifecycle import close
from services.tasks.outbox.service import wake_after_commit
from services.tasks.projects import service
from services.tasks.projects.schemas import ProjectCreate, ProjectRead, ProjectUpdate
from shared.auth import RequesterDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InsufficientFunds,
    InvalidState,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.http import InternalClient
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/projects", tags=["projects"])


def _payments(request: Request) -> InternalClient:
    return request.app.state.peers["payments"]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed, Conflict),
    summary="Create a project (status draft)",
)
async def create_project(
    body: ProjectCreate, caller: RequesterDep, idem: IdempotencyDep
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.create_project(db, requester_id=caller.account_id, data=body),
    )


@router.get(
    "",
    response_model=Page[ProjectRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The caller's projects, newest first, with live counts and money",
)
async def list_projects(caller: RequesterDep, db: ReadDbDep, page: PageDep) -> Page[ProjectRead]:
    return await service.list_projects(db, requester_id=caller.account_id, page=page)


@router.get(
    "/{project_id}",
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
)
async def get_project(project_id: str, caller: RequesterDep, db: ReadDbDep) -> ProjectRead:
    return await service.get_project(db, requester_id=caller.account_id, project_id=project_id)


@router.patch(
    "/{project_id}",
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, InvalidState, ValidationFailed),
    summary="Edit a project: anything while draft; texts and rules once published; never closed",
)
async def update_project(
    project_id: str, body: ProjectUpdate, caller: RequesterDep, db: WriteDbDep
) -> ProjectRead:
    return await service.update_project(
        db, requester_id=caller.account_id, project_id=project_id, data=body
    )


@router.post(
    "/{project_id}/publish",
    response_model=ProjectRead,
    responses=error_responses(
        Unauthorized, Forbidden, NotFound, InsufficientFunds, InvalidState, DependencyUnavailable
    ),
    summary="Reserve every slot's reward + fee and open the work (draft → published)",
)
async def publish_project(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    idem: IdempotencyDep,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.publish_project(
            db,
            payments=_payments(request),
            requester_id=caller.account_id,
            project_id=project_id,
        ),
    )


@router.post(
    "/{project_id}/pause",
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, InvalidState),
    summary="Stop new accepts for a while (published → paused)",
)
async def pause_project(project_id: str, caller: RequesterDep, idem: IdempotencyDep) -> Response:
    return await idem.run(
        caller,
        lambda db: service.pause_project(db, requester_id=caller.account_id, project_id=project_id),
    )


@router.post(
    "/{project_id}/resume",
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, InvalidState),
    summary="Offer the work again (paused → published)",
)
async def resume_project(project_id: str, caller: RequesterDep, idem: IdempotencyDep) -> Response:
    return await idem.run(
        caller,
        lambda db: service.resume_project(
            db, requester_id=caller.account_id, project_id=project_id
        ),
    )


@router.post(
    "/{project_id}/close",
    response_model=ProjectRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, InvalidState),
    summary="Stop the work for good; unused reservations go back to the available balance",
)
async def close_project(
    project_id: str,
    request: Request,
    background: BackgroundTasks,
    caller: RequesterDep,
    idem: IdempotencyDep,
) -> Response:
    wake_after_commit(request, background)  # the release goes out as soon as close commits
    return await idem.run(
        caller,
        lambda db: close.close_project(db, requester_id=caller.account_id, project_id=project_id),
    )
