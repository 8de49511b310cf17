"""Batched payouts for the tasks outbox (docs/internal-api.md), X-Internal-Token required.

200 with one result per item: a refused item fails alone, with the status and problem the
single `POST /internal/payouts` would have answered, so the caller settles each message on its
own. A whole-batch error (401, 422 for a body that is not a list of 1-500 objects, 5xx) means
nothing was applied.
"""

from __future__ import annotations

from services.payments.deps import SettingsDep
from services.payments.payouts import service
from services.payments.payouts.schemas import PayoutBatchCreate, PayoutBatchRead
from shared.auth import internal_router
from shared.database import WriteDbDep
from shared.errors import InsufficientFunds, NotFound, ValidationFailed, error_responses

router = internal_router("/internal")


@router.post(
    "/payouts/batch",
    response_model=PayoutBatchRead,
    responses=error_responses(InsufficientFunds, NotFound, ValidationFailed),
    summary="Pay many approved assignments in one call; one result per item",
)
async def create_payout_batch(
    body: PayoutBatchCreate, db: WriteDbDep, settings: SettingsDep
) -> PayoutBatchRead:
    return await service.pay_batch(db, body=body, settings=settings)
