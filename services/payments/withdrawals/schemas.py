from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from shared.money import Money, MoneyOut

WithdrawalStatus = TypeAliasType("WithdrawalStatus", Literal["pending", "paid"])


class WithdrawalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Money = Field(description="At least 1.00 and at most the available balance.")


class WithdrawalRead(BaseModel):
    id: str
    amount: MoneyOut
    status: WithdrawalStatus
    provider_reference: str | None = Field(description="Set by the payout provider once paid.")
    created_at: datetime
    paid_at: datetime | None
