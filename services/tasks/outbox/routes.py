"""Operations view of the payments outbox (internal: X-Internal-Token)."""

from __future__ import annotations

from services.tasks.outbox import service
from services.tasks.outbox.schemas import OutboxStats
from shared.auth import internal_router
from shared.database import ReadDbDep

router = internal_router("/internal/outbox", tag="outbox")


@router.get(
    "/stats",
    response_model=OutboxStats,
    summary="Payouts and releases waiting for payments, parked, delivered",
)
async def outbox_stats(db: ReadDbDep) -> OutboxStats:
    return await service.outbox_stats(db)
