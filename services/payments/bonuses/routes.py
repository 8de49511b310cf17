"""`POST /v1/bonuses` (contract: "Money"): idempotent with `Idempotency-Key`."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response

from services.payments.bonuses import service
from services.payments.bonuses.schemas import BonusCreate, BonusRead
from services.payments.deps import SettingsDep
from shared.auth import RequesterDep
from shared.errors import (
    Conflict,
    Forbidden,
    InsufficientFunds,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep

router = APIRouter(prefix="/v1/bonuses", tags=["money"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BonusRead,
    responses=error_responses(
        Unauthorized, InsufficientFunds, Forbidden, NotFound, Conflict, ValidationFailed
    ),
    summary="Pay a bonus (plus fee) to the worker of one of your assignments",
)
async def create_bonus(
    body: BonusCreate,
    caller: RequesterDep,
    idem: IdempotencyDep,
    settings: SettingsDep,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.pay_bonus(
            db,
            requester_id=caller.account_id,
            assignment_id=body.assignment_id,
            amount_cents=body.amount,
            reason=body.reason,
            settings=settings,
        ),
    )
