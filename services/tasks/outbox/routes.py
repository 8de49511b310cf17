"""Operations view of the payments outbox (internal: X-Internal-Token)."""

from __future__ import annotations

from fastapi import APIRouter

from services.tasks.outbox import service
from services.tasks.outbox.schemas import OutboxStats
from shared.auth import InternalDep
from shared.database import ReadDbDep
from shared.errors import Unauthorized, error_responses

router = APIRouter(
    prefix="/internal/outbox",
    tags=["outbox"],
    dependencies=[InternalDep],
    include_in_schema=False,  # service-to-service: served, not in the public document
)


@router.get(
    "/stats",
    response_model=OutboxStats,
    responses=error_responses(Unauthorized),
    summary="Payouts and releases waiting for payments, parked, delivered",
)
async def outbox_stats(db: ReadDbDep) -> OutboxStats:
    return await service.outbox_stats(db)
