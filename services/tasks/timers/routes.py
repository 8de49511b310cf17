"""Operations view of the timers (internal: X-Internal-Token)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.tasks.timers import service
from services.tasks.timers.schemas import TimerStats
from shared.auth import InternalDep
from shared.database import ReadDbDep
from shared.errors import Unauthorized, error_responses

router = APIRouter(
    prefix="/internal/timers",
    tags=["timers"],
    dependencies=[InternalDep],
    include_in_schema=False,  # service-to-service: served, not in the public document
)


@router.get(
    "/stats",
    response_model=TimerStats,
    responses=error_responses(Unauthorized),
    summary="This process's timer sweeps: items acted on, failures, and what is due now",
)
async def timer_stats(request: Request, db: ReadDbDep) -> TimerStats:
    return await service.timer_stats(request.app.state.timer_runner, db)
