"""`POST /v1/withdrawals` (idempotent with `Idempotency-Key`) and `GET /v1/withdrawals`."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response

from services.payments.deps import SettingsDep
from services.payments.withdrawals import service
from services.payments.withdrawals.schemas import WithdrawalCreate, WithdrawalRead
from shared.auth import WorkerDep
from shared.database import ReadDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    InsufficientFunds,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/withdrawals", tags=["money"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WithdrawalRead,
    responses=error_responses(
        Unauthorized, InsufficientFunds, Forbidden, Conflict, ValidationFailed
    ),
    summary="Withdraw (minimum 1.00, at most available); pending until the provider pays it",
)
async def create_withdrawal(
    body: WithdrawalCreate,
    caller: WorkerDep,
    idem: IdempotencyDep,
    settings: SettingsDep,
) -> Response:
    return await idem.run(
        caller,
        lambda db: service.request_withdrawal(
            db, worker_id=caller.account_id, amount_cents=body.amount, settings=settings
        ),
    )


@router.get(
    "",
    response_model=Page[WithdrawalRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Own withdrawals, newest first",
)
async def list_withdrawals(caller: WorkerDep, db: ReadDbDep, page: PageDep) -> Page[WithdrawalRead]:
    return await service.list_withdrawals(db, worker_id=caller.account_id, page=page)
