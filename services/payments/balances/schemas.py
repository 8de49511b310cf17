from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from shared.money import MoneyOut

TransactionKind = TypeAliasType(
    "TransactionKind",
    Literal["deposit", "reservation", "release", "payout", "bonus", "withdrawal"],
)
TransactionAccount = TypeAliasType("TransactionAccount", Literal["available", "reserved"])
# `kind` is filled by default and still required in the response schema, so clients can
# branch on it (the OpenAPI discriminator of `Balance`).
_KIND_REQUIRED = ConfigDict(json_schema_serialization_defaults_required=True)


class RequesterBalance(BaseModel):
    model_config = _KIND_REQUIRED

    kind: Literal["requester"] = Field(
        default="requester", description="The caller's account kind: this variant's tag."
    )
    available: MoneyOut = Field(description="Free to reserve, spend on bonuses.")
    reserved: MoneyOut = Field(description="Held for slots not yet paid or released.")
    spent: MoneyOut = Field(
        description="Paid out: rewards + fees of paid assignments, bonuses + fees."
    )


class WorkerBalance(BaseModel):
    model_config = _KIND_REQUIRED

    kind: Literal["worker"] = Field(
        default="worker", description="The caller's account kind: this variant's tag."
    )
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
