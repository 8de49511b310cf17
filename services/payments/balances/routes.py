"""`GET /v1/balance` and `GET /v1/transactions` (contract: "Money"), for either role."""

from __future__ import annotations

from fastapi import APIRouter

from services.payments.balances import service
from services.payments.balances.schemas import (
    Balance,
    RequesterBalance,
    TransactionEntry,
    WorkerBalance,
)
from shared.auth import CallerDep
from shared.database import ReadDbDep, StaleReadDbDep
from shared.errors import Unauthorized, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1", tags=["money"])


@router.get(
    "/balance",
    response_model=Balance,
    responses=error_responses(Unauthorized),
    summary="Requester: {kind, available, reserved, spent}; "
    "worker: {kind, pending, available, withdrawn}",
)
async def get_balance(caller: CallerDep, db: ReadDbDep) -> RequesterBalance | WorkerBalance:
    return await service.get_balance(db, caller=caller)


@router.get(
    "/transactions",
    response_model=Page[TransactionEntry],
    responses=error_responses(Unauthorized, ValidationFailed),
    summary="The caller's ledger entries, newest first",
)
async def list_transactions(
    caller: CallerDep, db: StaleReadDbDep, page: PageDep
) -> Page[TransactionEntry]:
    # History may lag a few seconds; the balance (above), which clients act on, does not.
    return await service.list_transactions(db, caller=caller, page=page)
