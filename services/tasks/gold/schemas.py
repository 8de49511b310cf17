from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ProjectWorkerStats(BaseModel):
    worker_id: str
    gold_answered: int = Field(description="Gold tasks this worker answered in the project.")
    gold_correct: int
    gold_accuracy: float | None = Field(
        description="Percent of gold answers that were right; null before the first gold answer."
    )
    below_min_gold_accuracy: bool = Field(
        description="The project's min_gold_accuracy stops offering work to this worker "
        "(judged after at least 3 gold answers)."
    )
    submitted: int = Field(description="Answers submitted in the project (any later outcome).")
    approved: int
    rejected: int
    pending_review: int
    updated_at: datetime
    skill: float | None = Field(
        default=None,
        description="The worker's skill estimate from the project's newest finished "
        "aggregation run (of `aggregation` when given; see `AggregationRun` for what each "
        "method's number means); null before any run, or when the run saw no answer of theirs.",
    )
    skill_method: str | None = Field(
        default=None, description="The aggregation method `skill` comes from."
    )
    skill_computed_at: datetime | None = Field(
        default=None, description="When that run finished (it covers the answers up to then)."
    )
