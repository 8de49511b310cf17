"""Changing a task after upload: additional assignments, expiry, disposal (the owner only)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from services.tasks.outbox.service import wake_after_commit
from services.tasks.task_changes import service
from services.tasks.task_changes.schemas import AdditionalAssignments, TaskChange
from services.tasks.tasks.schemas import TaskRead
from shared.auth import RequesterDep
from shared.database import WriteDbDep
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

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _payments(request: Request) -> InternalClient:
    return request.app.state.peers["payments"]


@router.post(
    "/{task_id}/additional-assignments",
    response_model=TaskRead,
    responses=error_responses(
        Unauthorized,
        InsufficientFunds,
        Forbidden,
        NotFound,
        Conflict,
        ValidationFailed,
        DependencyUnavailable,
    ),
    summary="Ask for more answers to one task; their money is reserved at once",
)
async def add_task_assignments(
    task_id: str,
    body: AdditionalAssignments,
    request: Request,
    background: BackgroundTasks,
    caller: RequesterDep,
    idem: IdempotencyDep,
) -> Response:
    wake_after_commit(request, background)  # a task found past its expiry releases its slots
    return await idem.run(
        caller,
        lambda db: service.add_assignments(
            db,
            payments=_payments(request),
            requester_id=caller.account_id,
            task_id=task_id,
            count=body.count,
            reservation_key=service.reservation_suffix(idem.key),
        ),
    )


@router.patch(
    "/{task_id}",
    response_model=TaskRead,
    responses=error_responses(
        Unauthorized,
        InsufficientFunds,
        Forbidden,
        NotFound,
        InvalidState,
        ValidationFailed,
        DependencyUnavailable,
    ),
    summary="Move a task's expiry; now or in the past expires it at once",
)
async def update_task(
    task_id: str,
    body: TaskChange,
    request: Request,
    background: BackgroundTasks,
    caller: RequesterDep,
    db: WriteDbDep,
) -> TaskRead:
    wake_after_commit(request, background)  # an expiry's release goes out once it commits
    return await service.set_expiry(
        db,
        payments=_payments(request),
        requester_id=caller.account_id,
        task_id=task_id,
        expires_at=body.expires_at,
    )


@router.post(
    "/{task_id}/dispose",
    response_model=TaskRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, InvalidState),
    summary="Take a finished task out of the task lists (its answers and money history stay)",
)
async def dispose_task(
    task_id: str,
    request: Request,
    background: BackgroundTasks,
    caller: RequesterDep,
    db: WriteDbDep,
) -> TaskRead:
    wake_after_commit(request, background)  # a task found past its expiry releases its slots
    return await service.dispose(db, requester_id=caller.account_id, task_id=task_id)
