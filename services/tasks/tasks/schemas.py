"""Tasks as their owner sees them (assignments in the queue side's shape), and the upload."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from services.tasks.assignments.schemas import AssignmentRead

TaskStatus = TypeAliasType("TaskStatus", Literal["open", "completed", "expired"])


class TaskIn(BaseModel):
    """One task of an upload (documentation: uploads are parsed by `upload.py`, which reports
    every broken row at once with its index or line number)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="Free JSON shown to the worker.")
    gold_answer: Any | None = Field(
        default=None, description="A known-correct answer (validated against the answer schema)."
    )
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    max_assignments: int | None = Field(
        default=None, ge=1, le=100, description="Defaults to the project's assignments_per_task."
    )
    explanation: str | None = Field(
        default=None,
        max_length=10_000,
        description="Why the gold answer is right; every task of a training project needs one.",
    )


class TasksCreated(BaseModel):
    created: int
    task_ids: list[str]


class TaskRead(BaseModel):
    id: str
    project_id: str
    external_id: str | None
    input: dict[str, Any]
    is_gold: bool
    gold_answer: Any | None = Field(description="Shown to the project's owner only.")
    explanation: str | None = Field(
        default=None,
        description="Why the gold answer is right (training projects): shown to a worker after "
        "their own submit of the task.",
    )
    status: TaskStatus
    max_assignments: int
    open_slots: int
    created_at: datetime
    expires_at: datetime | None
    disposed_at: datetime | None = Field(
        default=None,
        description="When the owner disposed of the task (POST /v1/tasks/{id}/dispose): it is "
        "left out of the task lists unless include_disposed=true.",
    )
    assignments: list[AssignmentRead]
