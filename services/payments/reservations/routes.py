"""Internal money calls of the tasks service (docs/internal-api.md), X-Internal-Token required.

201 when the call acted; a repeated `key` with the same body answers the first result with 200
(header `Idempotent-Replayed: true`) and moves nothing; with a different body 409
`idempotency_key_reused`.
"""

from __future__ import annotations

from fastapi import Response, status

from services.payments.balances import service as balances
from services.payments.balances.schemas import RequesterBalance
from services.payments.bonuses import service as bonuses
from services.payments.bonuses.schemas import BonusRead, InternalBonusCreate
from services.payments.deps import SettingsDep
from services.payments.payouts import service as payouts
from services.payments.reservations import service
from services.payments.reservations.schemas import (
    LedgerTransactionRead,
    PayoutCreate,
    ReleaseCreate,
    ReservationCreate,
    TopUpCreate,
)
from shared.auth import Caller, internal_router
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import Conflict, InsufficientFunds, NotFound, ValidationFailed, error_responses

router = internal_router("/internal")


# A repeated key answers 200 with the first result (documented, so clients and the OpenAPI
# conformance tests expect it).
_REPLAYED: dict[int | str, dict] = {
    200: {"model": LedgerTransactionRead, "description": "A repeated key: the first result"}
}


def _answer(
    response: Response, outcome: tuple[LedgerTransactionRead, bool]
) -> LedgerTransactionRead:
    """The call's result: 201 when it acted, 200 for a repeated key (the first result)."""
    result, replayed = outcome
    response.status_code = status.HTTP_200_OK if replayed else status.HTTP_201_CREATED
    response.headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return result


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=LedgerTransactionRead,
    responses=_REPLAYED | error_responses(InsufficientFunds, NotFound, Conflict, ValidationFailed),
    summary="Requester available -> reserved, held for the project",
)
async def create_reservation(
    body: ReservationCreate, db: WriteDbDep, response: Response
) -> LedgerTransactionRead:
    return _answer(response, await service.reserve(db, data=body))


@router.post(
    "/payouts",
    status_code=status.HTTP_201_CREATED,
    response_model=LedgerTransactionRead,
    responses=_REPLAYED | error_responses(InsufficientFunds, NotFound, Conflict, ValidationFailed),
    summary="Pay an approved assignment: reward to the worker, fee to the platform",
)
async def create_payout(
    body: PayoutCreate, db: WriteDbDep, settings: SettingsDep, response: Response
) -> LedgerTransactionRead:
    return _answer(response, await payouts.pay(db, data=body, settings=settings))


@router.post(
    "/releases",
    status_code=status.HTTP_201_CREATED,
    response_model=LedgerTransactionRead,
    responses=_REPLAYED | error_responses(NotFound, Conflict, ValidationFailed),
    summary="Reserved -> available for slots that will never be paid",
)
async def create_release(
    body: ReleaseCreate, db: WriteDbDep, response: Response
) -> LedgerTransactionRead:
    return _answer(response, await service.release(db, data=body))


@router.post(
    "/top-ups",
    status_code=status.HTTP_201_CREATED,
    response_model=LedgerTransactionRead,
    responses=_REPLAYED | error_responses(InsufficientFunds, NotFound, Conflict, ValidationFailed),
    summary="A pay floor top-up of an approved answer: a bonus from the project's reserve",
)
async def create_top_up(
    body: TopUpCreate, db: WriteDbDep, settings: SettingsDep, response: Response
) -> LedgerTransactionRead:
    return _answer(response, await bonuses.pay_top_up(db, data=body, settings=settings))


@router.post(
    "/bonuses",
    status_code=status.HTTP_201_CREATED,
    response_model=BonusRead,
    responses=error_responses(InsufficientFunds, NotFound, Conflict, ValidationFailed),
    summary="A requester's bonus on its behalf (the MTurk door's SendBonus): once per key",
)
async def create_bonus(
    body: InternalBonusCreate, db: WriteDbDep, settings: SettingsDep
) -> BonusRead:
    """A repeated key with the same body answers the first bonus (201 too: the caller only
    needs to know the bonus exists once); with another body 409 `idempotency_key_reused`."""
    return await bonuses.pay_bonus(
        db,
        requester_id=body.requester_id,
        assignment_id=body.assignment_id,
        amount_cents=body.amount_cents,
        reason=body.reason,
        settings=settings,
        key=body.key,
    )


@router.get(
    "/requesters/{requester_id}/balance",
    response_model=RequesterBalance,
    summary="A requester's balance, as `GET /v1/balance` shows it to the requester",
)
async def get_requester_balance(requester_id: str, db: ReadDbDep) -> RequesterBalance:
    balance = await balances.get_balance(
        db, caller=Caller(account_id=requester_id, kind="requester", key_id="")
    )
    assert isinstance(balance, RequesterBalance)
    return balance
