"""Results: every task's answers and their aggregate, streamed in the format asked for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.tasks.results import service
from services.tasks.results.jobs import jobs_of
from services.tasks.results.repository import RunRow
from services.tasks.results.schemas import (
    AggregationMethod,
    AggregationRun,
    ResultRecord,
    ResultsFormat,
)
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
            "line; `csv`: the columns below; `label_studio`: a JSON array of LabelStudioTask "
            "(Label Studio's task format: one annotation per answer, the aggregate as a "
            'prediction; docs/api.md, "Label Studio").',
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
        202: {
            "model": AggregationRun,
            "description": "With `aggregation`: the method's run for the current answers is "
            "still going; poll `status_url` (also the Location header), then ask again.",
        },
        **error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    },
    summary="Export the project's results (json, jsonl, csv or label_studio), streamed",
)
async def export_results(
    project_id: str,
    request: Request,
    caller: RequesterDep,
    db: ReadDbDep,
    fmt: Annotated[ResultsFormat, Query(alias="format")] = "json",
    aggregation: Annotated[
        AggregationMethod | None,
        Query(
            description="A crowd-kit method: majority, wawa, dawid_skene, glad, mace "
            "(classification, sentiment), rover (transcription), segmentation_em "
            "(bounding_box). Without it: today's majority export. A method that does not fit "
            "the project's task type: 422 `aggregation_not_supported` naming those that do.",
        ),
    ] = None,
) -> Response:
    if aggregation is not None:
        settings = request.app.state.settings
        project, run = await service.aggregation_run(
            db,
            database=request.app.state.database,
            jobs=jobs_of(request.app),
            requester_id=caller.account_id,
            project_id=project_id,
            method=aggregation,
            wait_seconds=settings.aggregation_inline_wait_seconds,
        )
        if run.status != "done":
            body = run_read(run, fmt=fmt)
            return JSONResponse(
                body.model_dump(mode="json"),
                status_code=202,
                headers={"Location": body.status_url, "Retry-After": "2"},
            )
        export = service.aggregated_export(
            database=request.app.state.database,
            project=project,
            run=run,
            fmt=fmt,
            batch_rows=settings.results_batch_rows,
        )
        return StreamingResponse(
            export.chunks,
            media_type=export.media_type,
            headers={"Content-Disposition": f'inline; filename="{export.filename}"'},
        )
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


def run_read(run: RunRow, *, fmt: str = "json") -> AggregationRun:
    base = f"/v1/projects/{run.project_id}"
    return AggregationRun(
        id=run.id,
        project_id=run.project_id,
        method=run.method,  # type: ignore[arg-type]
        status=run.status,  # type: ignore[arg-type]
        stage=run.stage,  # type: ignore[arg-type]
        progress=run.progress,
        error=run.error,
        task_count=run.task_count,
        answer_count=run.answer_count,
        worker_count=run.worker_count,
        compute_seconds=run.compute_seconds,
        created_at=run.created_at,
        finished_at=run.finished_at,
        status_url=f"{base}/aggregations/{run.id}",
        results_url=f"{base}/results?aggregation={run.method}&format={fmt}",
    )


@router.get(
    "/v1/projects/{project_id}/aggregations/{run_id}",
    response_model=AggregationRun,
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="An aggregation run's status and progress (the 202 of a results request)",
)
async def get_aggregation_run(
    project_id: str, run_id: str, caller: RequesterDep, db: ReadDbDep
) -> AggregationRun:
    run = await service.get_run(
        db, requester_id=caller.account_id, project_id=project_id, run_id=run_id
    )
    return run_read(run)
