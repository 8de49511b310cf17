"""Results: every task's answers and their aggregate, streamed in the format asked for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from services.tasks.results import service
from services.tasks.results.service import ResultsFormat
from shared.auth import RequesterDep
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses

router = APIRouter(tags=["results"])


@router.get(
    "/v1/projects/{project_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One record per task, in upload order: task_id, external_id, input, "
            "answers[{assignment_id, worker_id, answer, status}], aggregate{answer, agreement}.",
            "content": {"application/json": {}, "application/x-ndjson": {}, "text/csv": {}},
        },
        **error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    },
    summary="Export the project's results (json, jsonl or csv), streamed",
)
async def export_results(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    session: SessionDep,
    fmt: Annotated[ResultsFormat, Query(alias="format")] = "json",
) -> StreamingResponse:
    export = await service.export_results(
        session,
        sessionmaker=request.app.state.sessionmaker,
        requester_id=caller.account_id,
        project_id=project_id,
        fmt=fmt,
        batch_rows=request.app.state.settings.results_batch_rows,
    )
    return StreamingResponse(
        export.chunks,
        media_type=export.media_type,
        headers={"Content-Disposition": f'inline; filename="{export.filename}"'},
    )
