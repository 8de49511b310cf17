"""Tasks: bulk upload (JSON, CSV, NDJSON) and the owner's task reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response

from services.tasks.tasks import service
from services.tasks.tasks.schemas import TaskIn, TaskRead, TasksCreated, TaskStatus
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
from shared.pagination import Page, PageDep

router = APIRouter(tags=["tasks"])

_CSV_EXAMPLE = 'text,external_id,gold_answer\n"A cat on a mat",row-1,"{""label"": ""cat""}"\n'
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["tasks"],
                    "additionalProperties": False,
                    "properties": {
                        "tasks": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 10_000,
                            "items": TaskIn.model_json_schema(),
                        }
                    },
                }
            },
            # A Media Type Object has no `description` (OpenAPI 3.1 validators refuse one): each
            # text form says what it holds in its schema's description. `format: binary` makes
            # generators that send raw bodies as files (openapi-python-client) send them as is.
            "text/csv": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "Header row; an `input` column of JSON, or one column per "
                    "input field; optional gold_answer (JSON), external_id, max_assignments.",
                },
                "example": _CSV_EXAMPLE,
            },
            "application/x-ndjson": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "One task object per line, as in the JSON form's `tasks`.",
                },
            },
        },
        "description": "The tasks as JSON (`{tasks: [...]}`), CSV or NDJSON (one task per "
        "row/line); up to 10,000, all or nothing.",
    }
}


@router.post(
    "/v1/projects/{project_id}/tasks",
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
    openapi_extra=_UPLOAD_BODY,
    summary="Add up to 10,000 tasks at once; all or nothing",
)
async def add_tasks(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    idem: IdempotencyDep,
) -> Response:
    body = await request.body()
    return await idem.run(
        caller,
        lambda db: service.add_tasks(
            db,
            payments=request.app.state.peers["payments"],
            requester_id=caller.account_id,
            project_id=project_id,
            content_type=request.headers.get("content-type"),
            body=body,
            max_tasks=request.app.state.settings.upload_max_tasks,
            idempotency_key=idem.key,
        ),
    )


@router.get(
    "/v1/projects/{project_id}/tasks",
    response_model=Page[TaskRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="The project's tasks, newest first, each with its assignments",
)
async def list_tasks(
    project_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    task_status: Annotated[TaskStatus | None, Query(alias="status")] = None,
    include_disposed: Annotated[
        bool, Query(description="Also list the tasks the owner disposed of.")
    ] = False,
) -> Page[TaskRead]:
    return await service.list_tasks(
        db,
        requester_id=caller.account_id,
        project_id=project_id,
        status=task_status,
        page=page,
        include_disposed=include_disposed,
    )


@router.get(
    "/v1/tasks/{task_id}",
    response_model=TaskRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
)
async def get_task(task_id: str, caller: RequesterDep, db: ReadDbDep) -> TaskRead:
    return await service.get_task(db, requester_id=caller.account_id, task_id=task_id)
