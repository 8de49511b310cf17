"""`GET /internal/ledger/check`: the contract's invariants, recomputed from the entries."""

from __future__ import annotations

from services.payments.ledger import service
from services.payments.ledger.schemas import LedgerCheck
from shared.auth import internal_router
from shared.database import WriteDbDep

router = internal_router("/internal/ledger")


@router.get(
    "/check",
    response_model=LedgerCheck,
    summary="Recompute every ledger invariant from the entries (one consistent snapshot)",
)
async def check_ledger(db: WriteDbDep) -> LedgerCheck:
    # A transaction, not a ReadDb: every figure must come from one REPEATABLE READ snapshot.
    return await service.check(db)
