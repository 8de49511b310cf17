"""Discovery: the work a worker may see, and one project's preview."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.tasks.discovery import service
from services.tasks.discovery.schemas import WorkProject, WorkProjectPreview
from shared.auth import WorkerDep
from shared.database import ReadDbDep, StaleReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/work/projects", tags=["discovery"])


@router.get(
    "",
    operation_id="list_work_projects",
    response_model=Page[WorkProject],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Published projects with work this worker may take now, newest first",
)
async def list_work(
    request: Request, caller: WorkerDep, db: StaleReadDbDep, page: PageDep
) -> Page[WorkProject]:
    # A listing: a project published a second ago may show a moment later (accept, on the
    # primary, decides what a worker really gets).
    settings = request.app.state.settings
    return await service.list_work(
        db,
        worker_id=caller.account_id,
        page=page,
        scan_batch=settings.discovery_scan_batch,
        stats_ttl=settings.discovery_stats_ttl_seconds,
    )


@router.get(
    "/{project_id}",
    operation_id="preview_work_project",
    response_model=WorkProjectPreview,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="Preview: instructions, answer format and one sample input (preview guard applies)",
)
async def preview(
    project_id: str, request: Request, caller: WorkerDep, db: ReadDbDep
) -> WorkProjectPreview:
    return await service.preview(
        db,
        worker_id=caller.account_id,
        project_id=project_id,
        stats_ttl=request.app.state.settings.discovery_stats_ttl_seconds,
    )
