"""Label Studio: the project's labeling config, and the import of an LS task export as tasks.

The export itself is a results format: `GET /v1/projects/{id}/results?format=label_studio`
(services/tasks/results/routes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, status
from fastapi.responses import Response

from services.tasks.interop import service
from services.tasks.interop.schemas import LabelStudioConfig, LabelStudioGold, LabelStudioTask
from services.tasks.tasks import service as tasks_service
from services.tasks.tasks.schemas import TasksCreated
from shared.auth import RequesterDep
from shared.database import ReadDbDep
from shared.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InsufficientFunds,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep

router = APIRouter(tags=["label-studio"])


def _json_only(request: Request, caller: RequesterDep) -> None:
    """415 for a body that is not JSON, before the body is read as one (a route dependency
    runs before the body's validation; it takes the caller so that a request without a valid
    key is a 401 first, the same cached dependency the route gets)."""
    del caller
    service.require_json(request.headers.get("content-type"))


@router.get(
    "/v1/projects/{project_id}/label-studio/config",
    response_model=LabelStudioConfig,
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="The project's Label Studio labeling config",
)
async def get_label_studio_config(
    project_id: str, caller: RequesterDep, db: ReadDbDep
) -> LabelStudioConfig:
    return await service.labeling_config(db, requester_id=caller.account_id, project_id=project_id)


@router.post(
    "/v1/projects/{project_id}/label-studio/tasks",
    status_code=status.HTTP_201_CREATED,
    response_model=TasksCreated,
    responses=error_responses(
        BadRequest,
        Unauthorized,
        InsufficientFunds,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        DependencyUnavailable,
    ),
    summary="Add tasks from a Label Studio task export (up to 10,000; all or nothing)",
    dependencies=[Depends(_json_only)],
)
async def import_label_studio_tasks(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    idem: IdempotencyDep,
    tasks: Annotated[
        list[LabelStudioTask],
        Body(
            description="A Label Studio JSON task export: each task's `data` becomes a task's "
            "input, `meta.external_id` its external_id; annotations become gold answers only "
            "as `annotations_as_gold` says."
        ),
    ],
    annotations_as_gold: Annotated[
        LabelStudioGold,
        Query(
            description="`none` (default): annotations are ignored. `ground_truth`: the "
            "annotation marked ground_truth becomes the gold answer. `first`: that one, "
            "else the first annotation not cancelled."
        ),
    ] = "none",
) -> Response:
    # `tasks` only documents and shape-checks the body; the upload path parses the bytes (one
    # parser for the limits, item-indexed problems and gold conversion).
    del tasks
    body = await request.body()
    return await idem.run(
        caller,
        lambda db: tasks_service.add_tasks(
            db,
            payments=request.app.state.peers["payments"],
            requester_id=caller.account_id,
            project_id=project_id,
            content_type=request.headers.get("content-type"),
            body=body,
            max_tasks=request.app.state.settings.upload_max_tasks,
            idempotency_key=idem.key,
            parser=service.upload_parser(annotations_as_gold),
        ),
    )
