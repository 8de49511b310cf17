from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.money import MoneyOut


class RequesterBalance(BaseModel):
    available: MoneyOut = Field(description="Free to reserve, spend on bonuses.")
    reserved: MoneyOut = Field(description="Held for slots not yet paid or released.")
    spent: MoneyOut = Field(
        description="Paid out: rewards + fees of paid assignments, bonuses + fees."
    )


class WorkerBalance(BaseModel):
    pending: MoneyOut = Field(description="Rewards of submitted assignments awaiting review.")
    available: MoneyOut = Field(description="Earned and free to withdraw.")
    withdrawn: MoneyOut = Field(description="Withdrawals paid or on their way (`withdrawing`).")
    withdrawing: MoneyOut = Field(description="The part of `withdrawn` still pending.")


class TransactionEntry(BaseModel):
    """One ledger entry of one of the caller's accounts."""

    id: str
    transaction_id: str
    kind: Literal["deposit", "reservation", "release", "payout", "bonus", "withdrawal"]
    account: Literal["available", "reserved"]
    amount: MoneyOut = Field(description="Signed: negative when money left the account.")
    balance_after: MoneyOut
    reference: str = Field(description="What it was for: `assignment:<id>`, `project:<id>`, ...")
    created_at: datetime
