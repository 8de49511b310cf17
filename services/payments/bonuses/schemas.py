from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.money import Money, MoneyOut

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class BonusCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    amount: Annotated[Money, Field(gt=0)] = Field(description="Paid to the worker; fee on top.")
    reason: Reason = Field(description="Required; shown to the worker.")


class BonusRead(BaseModel):
    id: str = Field(description="The ledger transaction of the bonus.")
    assignment_id: str
    worker_id: str
    project_id: str
    amount: MoneyOut
    fee: MoneyOut
    reason: str
    created_at: datetime


class InternalBonusCreate(BaseModel):
    """`POST /internal/bonuses`: a requester's bonus asked for by another service on the
    requester's behalf (the MTurk door's SendBonus), paid at most once per `key`."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=255)
    requester_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    assignment_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    amount_cents: int = Field(strict=True, ge=1, le=10_000_000)
    reason: Reason
