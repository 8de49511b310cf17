from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from shared.money import MoneyOut

TransactionKind = TypeAliasType(
    "TransactionKind",
    Literal["deposit", "reservation", "release", "payout", "bonus", "withdrawal"],
)
TransactionAccount = TypeAliasType("TransactionAccount", Literal["available", "reserved"])


class _BalanceVariant(BaseModel):
    # `kind` is filled by default and still required in the response schema, so clients can
    # branch on it (the OpenAPI discriminator of `Balance`).
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


def _variant_tag(kind: str) -> Any:
    return Field(default=kind, description="The caller's account kind: this variant's tag.")


class RequesterBalance(_BalanceVariant):
    kind: Literal["requester"] = _variant_tag("requester")
    available: MoneyOut = Field(description="Free to reserve, spend on bonuses.")
    reserved: MoneyOut = Field(description="Held for slots not yet paid or released.")
    spent: MoneyOut = Field(
        description="Paid out: rewards + fees of paid assignments, bonuses + fees."
    )


class WorkerBalance(_BalanceVariant):
    kind: Literal["worker"] = _variant_tag("worker")
    pending: MoneyOut = Field(description="Rewards of submitted assignments awaiting review.")
    available: MoneyOut = Field(description="Earned and free to withdraw.")
    withdrawn: MoneyOut = Field(description="Withdrawals paid or on their way (`withdrawing`).")
    withdrawing: MoneyOut = Field(description="The part of `withdrawn` still pending.")


Balance = Annotated[RequesterBalance | WorkerBalance, Field(discriminator="kind")]
"""`GET /v1/balance`: the variant is the caller's account kind."""


class TransactionEntry(BaseModel):
    """One ledger entry of one of the caller's accounts."""

    id: str
    transaction_id: str
    kind: TransactionKind
    account: TransactionAccount
    amount: MoneyOut = Field(description="Signed: negative when money left the account.")
    balance_after: MoneyOut
    reference: str = Field(description="What it was for: `assignment:<id>`, `project:<id>`, ...")
    created_at: datetime
