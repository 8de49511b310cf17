"""Worker levels (contract: "Worker levels")."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.workers.levels import service
from services.workers.levels.ladder import Ladder
from services.workers.levels.schemas import LadderRead, MyLevelRead
from shared.auth import CallerDep, WorkerDep
from shared.database import ReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, error_responses

router = APIRouter(tags=["levels"])


def _ladder(request: Request) -> Ladder:
    return Ladder.from_settings(request.app.state.settings)


@router.get(
    "/v1/levels",
    operation_id="list_levels",
    response_model=LadderRead,
    responses=error_responses(Unauthorized),
    summary="The worker ladder: each level's thresholds, the windows and the grace period",
)
async def list_levels(request: Request, caller: CallerDep) -> LadderRead:
    # Any key (worker or requester): requesters read it to choose system.level requirements.
    return service.ladder_read(_ladder(request))


@router.get(
    "/v1/workers/me/level",
    operation_id="get_my_level",
    response_model=MyLevelRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="Your level, since when, your figures against the next level, and any warning",
)
async def get_my_level(request: Request, caller: WorkerDep, db: ReadDbDep) -> MyLevelRead:
    return await service.my_level(db, _ladder(request), worker_id=caller.account_id)
