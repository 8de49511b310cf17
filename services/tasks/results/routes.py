"""Results: every task's answers and their aggregate, streamed in the format asked for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from services.tasks.results import service
from services.tasks.results.schemas import ResultRecord, ResultsFormat
from shared.auth import RequesterDep
from shared.database import ReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses

router = APIRouter(tags=["results"])

_CSV_DESCRIPTION = (
    "A header row, then one row per task. Columns: task_id, external_id (empty when none), "
    "input (JSON), aggregate_answer (JSON; empty without votes), agreement (0-1, 2 decimals; "
    "empty without votes), answers (a JSON array of {assignment_id, worker_id, answer, status})."
)


@router.get(
    "/v1/projects/{project_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One record per task, in upload order: task_id, external_id, input, "
            "answers[{assignment_id, worker_id, answer, status}], aggregate{answer, agreement}. "
            "`format=json`: a JSON array of ResultRecord; `jsonl`: one ResultRecord (JSON) a "
            "line; `csv`: the columns below.",
            # `model` fills the application/json schema (listed first: clients that pick one
            # media type pick JSON); the streamed text forms are described as strings.
            "model": list[ResultRecord],
            "content": {
                "application/json": {},
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": "One ResultRecord (JSON object) per line, "
                        "newline-terminated.",
                    }
                },
                "text/csv": {"schema": {"type": "string", "description": _CSV_DESCRIPTION}},
            },
        },
        **error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    },
    summary="Export the project's results (json, jsonl or csv), streamed",
)
async def export_results(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    db: ReadDbDep,
    fmt: Annotated[ResultsFormat, Query(alias="format")] = "json",
) -> StreamingResponse:
    export = await service.export_results(
        db,
        database=request.app.state.database,
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
