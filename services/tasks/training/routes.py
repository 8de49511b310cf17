"""Training: the worker's progress in a training project (accept and submit are the queue's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.tasks.training import service
from services.tasks.training.schemas import (
    TrainingAttemptStatus,
    TrainingProgressRead,
    TrainingWorkerRead,
)
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

router = APIRouter(tags=["training"])


@router.get(
    "/v1/work/projects/{project_id}/training",
    operation_id="get_my_training_progress",
    response_model=TrainingProgressRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="The caller's progress in a training project: attempt, answers, accuracy, outcome",
    description="`status` `not_started`, `in_progress`, `passed` or `failed` (with `retry_at`, "
    "null when no retry is allowed). Expected answers are never shown here: only in the submit "
    "response of one's own answer. 404 for a standard project, a draft, or a requester who "
    "blocked the worker.",
)
async def get_my_training_progress(
    project_id: str, caller: WorkerDep, db: ReadDbDep
) -> TrainingProgressRead:
    return await service.get_progress(db, project_id=project_id, worker_id=caller.account_id)


@router.get(
    "/v1/projects/{project_id}/training/workers",
    operation_id="list_training_workers",
    response_model=Page[TrainingWorkerRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="The owner's training project: each worker's current attempt and outcome",
    description="Newest worker accounts first; `status` filters (`in_progress`, `passed`, "
    "`failed`). 404 for a standard project, someone else's, or an unknown id.",
)
async def list_training_workers(
    project_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    status: Annotated[TrainingAttemptStatus | None, Query(description="Only this status.")] = None,
) -> Page[TrainingWorkerRead]:
    return await service.list_workers(
        db, requester_id=caller.account_id, project_id=project_id, status=status, page=page
    )
