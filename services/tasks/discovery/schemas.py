"""What a worker sees of published projects: the work list and one project's preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.tasks.projects.schemas import TaskTypeName
from shared.money import MoneyOut


class RequesterStats(BaseModel):
    approval_rate_given: float | None = Field(
        description="Percent of the requester's decided assignments (all projects) it approved; "
        "null before its first decision."
    )
    median_review_seconds: int | None = Field(
        description="Median time from submission to approval or rejection (auto-approvals "
        "included); null before its first decision."
    )


class WorkProject(BaseModel):
    id: str
    requester_id: str
    title: str
    description: str
    keywords: list[str]
    task_type: TaskTypeName
    reward: MoneyOut
    available_tasks: int = Field(
        description="Tasks this worker can accept now (open slots, not expired, not answered)."
    )
    assignment_duration_seconds: int
    estimated_seconds_per_assignment: int | None
    hourly_rate_estimate: MoneyOut | None = Field(
        description="reward per hour from the median measured working time (accept to submit) "
        "once 3 answers exist, else from estimated_seconds_per_assignment; null with neither."
    )
    requester_stats: RequesterStats
    published_at: datetime | None


class WorkProjectPreview(WorkProject):
    instructions: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any]
    qualification_requirements: list[dict[str, Any]]
    sample_input: dict[str, Any] | None = Field(
        description="The input of one task this worker could accept now; null when none is left."
    )
