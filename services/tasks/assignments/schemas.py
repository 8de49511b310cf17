"""Assignment request and response models (contract: "Projects, tasks, assignments")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from shared.money import MoneyOut

AssignmentStatus = TypeAliasType(
    "AssignmentStatus",
    Literal["accepted", "submitted", "approved", "rejected", "returned", "expired"],
)


class AcceptedAssignment(BaseModel):
    """What a worker needs to start: kept small, the instructions come with the preview."""

    assignment_id: str
    task_id: str
    project_id: str
    input: dict[str, Any]
    reward: MoneyOut
    accepted_at: datetime
    deadline: datetime


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Any = Field(description="Must satisfy the project's answer schema.")


class AssignmentRead(BaseModel):
    id: str
    task_id: str
    project_id: str
    worker_id: str
    status: AssignmentStatus
    answer: Any | None
    feedback: str | None
    reward: MoneyOut
    accepted_at: datetime
    deadline: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    auto_approve_at: datetime | None


class WorkerAssignmentRead(AssignmentRead):
    project_title: str
