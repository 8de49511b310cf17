from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from shared.money import Money, MoneyOut

DepositStatus = TypeAliasType("DepositStatus", Literal["succeeded"])


class DepositCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Money = Field(description="More than 0.00 and at most 100000.00 (test provider).")


class DepositRead(BaseModel):
    id: str = Field(description="The ledger transaction of the deposit.")
    amount: MoneyOut
    status: DepositStatus
    provider: str
    provider_reference: str
    available: MoneyOut = Field(description="The requester's available balance after it.")
    created_at: datetime
