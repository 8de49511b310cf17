"""`GET /v1/earnings?from=&to=` (contract: "Money"), workers only."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from services.payments.earnings import service
from services.payments.earnings.schemas import Earnings
from shared.auth import WorkerDep
from shared.db import SessionDep
from shared.errors import Forbidden, Unauthorized, ValidationFailed, error_responses

router = APIRouter(prefix="/v1/earnings", tags=["money"])


@router.get(
    "",
    response_model=Earnings,
    response_model_by_alias=True,
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Earnings (rewards and bonuses) by day and project, hours worked, hourly rate",
)
async def get_earnings(
    caller: WorkerDep,
    session: SessionDep,
    from_date: Annotated[
        date | None, Query(alias="from", description="First UTC day (inclusive).")
    ] = None,
    to_date: Annotated[
        date | None, Query(alias="to", description="Last UTC day (inclusive).")
    ] = None,
) -> Earnings:
    return await service.get_earnings(
        session, worker_id=caller.account_id, from_date=from_date, to_date=to_date
    )
