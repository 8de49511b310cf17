"""`GET /internal/ledger/check`: the contract's invariants, recomputed from the entries."""

from __future__ import annotations

from fastapi import APIRouter

from services.payments.ledger import service
from services.payments.ledger.schemas import LedgerCheck
from shared.auth import InternalDep
from shared.database import WriteDbDep
from shared.errors import Unauthorized, error_responses

router = APIRouter(
    prefix="/internal/ledger",
    tags=["internal"],
    dependencies=[InternalDep],
    include_in_schema=False,  # service-to-service: served, not in the public document
)


@router.get(
    "/check",
    response_model=LedgerCheck,
    responses=error_responses(Unauthorized),
    summary="Recompute every ledger invariant from the entries (one consistent snapshot)",
)
async def check_ledger(db: WriteDbDep) -> LedgerCheck:
    # A transaction, not a ReadDb: every figure must come from one REPEATABLE READ snapshot.
    return await service.check(db)
