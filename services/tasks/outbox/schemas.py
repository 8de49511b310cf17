from __future__ import annotations

from pydantic import BaseModel, Field


class OutboxStats(BaseModel):
    pending: int = Field(description="Not yet acknowledged by payments (due now or backing off).")
    due: int = Field(description="Pending messages whose next attempt time has come.")
    retrying: int = Field(description="Pending messages that failed at least once.")
    parked: int = Field(description="Refused by payments for good; need a human.")
    delivered: int
    oldest_pending_seconds: float = Field(description="Age of the oldest pending message.")
