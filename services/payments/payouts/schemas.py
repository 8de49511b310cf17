"""Bodies of the batched payout call (`POST /internal/payouts/batch`).

Items are validated one by one in the service, not here: a malformed item must fail alone (422
in its own result) instead of refusing the whole batch, so the caller can park exactly that
message. The request model therefore takes the items as plain objects; their schema is the
single call's body, `PayoutCreate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.payments.reservations.schemas import LedgerTransactionRead
from shared.errors import Problem

# At most this many payouts per call: big enough that one call carries a whole outbox pass
# (the deliverer leases up to 100 by default), small enough that a batch stays one short
# database transaction.
PAYOUT_BATCH_MAX = 500

PayoutOutcome = Literal["applied", "replayed", "failed"]


class PayoutBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payouts: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=PAYOUT_BATCH_MAX,
        description="Each item is the body of `POST /internal/payouts` (schema `PayoutCreate`), "
        "with its own `key`; keys must be distinct within a batch. An invalid item fails alone.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/PayoutCreate"}},
    )


class PayoutProblem(Problem):
    """Why one item failed: the problem body the single call would have answered with (e.g.
    `held_cents` and `needed_cents` of a 409 reservation_exhausted)."""

    model_config = ConfigDict(extra="allow")


class PayoutBatchItemResult(BaseModel):
    key: str | None = Field(description="The item's key (null when the item has none).")
    status: int = Field(
        description="What the single call would have answered: 201 applied, 200 a replay of "
        "the key's first result, 4xx refused (nothing moved for this item)."
    )
    outcome: PayoutOutcome
    transaction: LedgerTransactionRead | None = Field(
        default=None, description="The key's ledger transaction (applied or replayed)."
    )
    problem: PayoutProblem | None = Field(default=None, description="Set when `failed`.")


class PayoutBatchRead(BaseModel):
    """One result per item, in the order of the request."""

    results: list[PayoutBatchItemResult]
    applied: int
    replayed: int
    failed: int
