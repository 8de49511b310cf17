"""`POST /v1/deposits` (contract: "Money"): idempotent with `Idempotency-Key`."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response

from services.payments.deposits import service
from services.payments.deposits.schemas import DepositCreate, DepositRead
from services.payments.deps import PaymentProviderDep, SettingsDep
from shared.auth import RequesterDep
from shared.errors import Conflict, Forbidden, Unauthorized, ValidationFailed, error_responses
from shared.idempotency import IdempotencyDep

router = APIRouter(prefix="/v1/deposits", tags=["money"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DepositRead,
    responses=error_responses(Unauthorized, Forbidden, Conflict, ValidationFailed),
    summary="Add funds through the built-in test payment provider (up to 100000.00)",
)
async def create_deposit(
    body: DepositCreate,
    caller: RequesterDep,
    idem: IdempotencyDep,
    settings: SettingsDep,
    provider: PaymentProviderDep,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.deposit(
            db,
            requester_id=caller.account_id,
            amount_cents=body.amount,
            settings=settings,
            provider=provider,
        ),
    )
