"""The pay floor as its requester sees it (contract: "Pay floor")."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from shared.money import MoneyOut


class PayFloorSettlementRead(BaseModel):
    period_start: date = Field(description="Monday (UTC) of the ISO week settled.")
    answers: int = Field(description="Approved answers of the period.")
    median_seconds: float = Field(description="Their median measured working time.")
    top_up: MoneyOut = Field(description="Paid to each answer's worker (0.00: none needed).")
    fee: MoneyOut = Field(description="The bonus fee on each top-up.")
    paid: MoneyOut = Field(description="Top-ups + fees paid from the reserve for the period.")
    released: MoneyOut = Field(description="Unused reserve released with this settlement.")
    final: bool = Field(description="The closed project's last settlement.")
    settled_at: datetime


class PayFloorRead(BaseModel):
    project_id: str
    min_hourly_rate: MoneyOut
    reward: MoneyOut
    duration_seconds: int = Field(
        description="Measured working time is capped here (the assignment duration at publish)."
    )
    worst_case_top_up: MoneyOut = Field(description="Reserved per slot, with its fee.")
    worst_case_fee: MoneyOut
    reserved: MoneyOut = Field(description="Reserved for the floor in all (publish and uploads).")
    paid: MoneyOut = Field(description="Top-ups + fees paid from that reserve.")
    released: MoneyOut = Field(description="Given back to the available balance.")
    held: MoneyOut = Field(description="reserved - paid - released: still held for the floor.")
    next_settlement_at: datetime | None = Field(
        description="When the settlement timer looks at the project next; null once finished."
    )
    finished_at: datetime | None = Field(
        description="The final settlement (project closed, nothing in flight); null before."
    )
    settlements: list[PayFloorSettlementRead] = Field(description="Oldest period first.")
