from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SweepStats(BaseModel):
    acted: int = Field(description="Items this process acted on since it started.")
    batches: int = Field(description="Committed batches of this process.")
    failures: int = Field(description="Batches that failed (and were rolled back) here.")
    last_error: str | None
    last_batch_at: datetime | None
    due_now: int = Field(description="Items due right now, whichever replica takes them.")


class TimerStats(BaseModel):
    replica: str = Field(description="host:pid of the process that answered.")
    running: bool
    batch_size: int
    poll_interval_seconds: float
    grace_seconds: float
    sweeps: dict[str, SweepStats]
