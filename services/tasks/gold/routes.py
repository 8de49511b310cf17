"""Gold accuracy and review counts per worker of a project (owner only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.tasks.gold import service
from services.tasks.gold.schemas import ProjectWorkerStats
from services.tasks.results.schemas import AggregationMethod
from shared.auth import RequesterDep
from shared.database import ReadDbDep, StaleReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

router = APIRouter(tags=["gold"])


@router.get(
    "/v1/projects/{project_id}/workers",
    response_model=Page[ProjectWorkerStats],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Each worker's gold accuracy, skill estimate and review counts in a project",
)
async def list_project_workers(
    project_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    stats_db: StaleReadDbDep,
    page: PageDep,
    aggregation: Annotated[
        AggregationMethod | None,
        Query(
            description="Take `skill` from this method's newest finished run (default: the "
            "newest finished run of any method)."
        ),
    ] = None,
) -> Page[ProjectWorkerStats]:
    # Statistics may be a few seconds old (accept's gold-accuracy check reads the primary);
    # whether the project is the caller's is not (no 404 for a project just created).
    return await service.list_project_workers(
        db,
        stats_db=stats_db,
        requester_id=caller.account_id,
        project_id=project_id,
        page=page,
        aggregation=aggregation,
    )
