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
