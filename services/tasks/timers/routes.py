"""Operations view of the timers (internal: X-Internal-Token)."""

from __future__ import annotations

from fastapi import Request

from services.tasks.timers import service
from services.tasks.timers.schemas import TimerStats
from shared.auth import internal_router
from shared.database import ReadDbDep

router = internal_router("/internal/timers", tag="timers")


@router.get(
    "/stats",
    response_model=TimerStats,
    summary="This process's timer sweeps: items acted on, failures, and what is due now",
)
async def timer_stats(request: Request, db: ReadDbDep) -> TimerStats:
    return await service.timer_stats(request.app.state.timer_runner, db)
