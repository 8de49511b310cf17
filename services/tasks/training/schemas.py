"""Training: the project's rule, the worker's feedback on submit and progress (docs/api.md,
"Training projects")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from services.tasks.assignments.schemas import AssignmentRead

# Named aliases: one OpenAPI component each (docs/api.md lists the names).
ProjectKind = TypeAliasType("ProjectKind", Literal["standard", "training"])
TrainingStatus = TypeAliasType(
    "TrainingStatus", Literal["not_started", "in_progress", "passed", "failed"]
)

# A worker's attempt once it exists (the owner's filter).
TrainingAttemptStatus = TypeAliasType(
    "TrainingAttemptStatus", Literal["in_progress", "passed", "failed"]
)

MAX_EXPLANATION_CHARS = 10_000


class TrainingRule(BaseModel):
    """What a training project grants and when (fixed at creation)."""

    model_config = ConfigDict(extra="forbid")

    qualification_type_id: str = Field(
        min_length=1,
        max_length=64,
        description="One of the requester's own qualification types (not a system type): "
        "granted to a worker who passes, with the accuracy (0-100) as its value.",
    )
    min_training_answers: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Answers of one attempt after which the worker passes or fails.",
    )
    pass_accuracy: int = Field(
        default=80,
        ge=0,
        le=100,
        description="The percent of correct answers (against the tasks' gold answers) to pass.",
    )


class TrainingFeedback(BaseModel):
    """Shown to the worker in the submit response of a training task, and only then: the
    expected answer of a task is revealed to a worker after their own submit of it."""

    correct: bool
    expected_answer: Any = Field(description="The task's gold answer.")
    explanation: str | None = Field(description="The requester's explanation of the answer.")
    progress: TrainingProgressRead


class SubmittedAssignment(AssignmentRead):
    """The submit response: the assignment, plus `training` for a training project's task."""

    training: TrainingFeedback | None = Field(
        default=None,
        description="Training projects only (absent otherwise): the grade of this answer, the "
        "expected answer and its explanation, and the worker's progress after it.",
    )


class TrainingProgressRead(BaseModel):
    project_id: str
    qualification_type_id: str
    min_training_answers: int
    pass_accuracy: int
    status: TrainingStatus = Field(
        description="`not_started` (no attempt yet), `in_progress`, `passed` (the qualification "
        "is granted with `granted_value`), `failed` (a retry is allowed from `retry_at`; never "
        "when it is null)."
    )
    attempt: int = Field(description="The current attempt, 1 for the first; 0 before it.")
    answers: int = Field(description="Answers counted in the current attempt.")
    correct: int
    accuracy: int | None = Field(
        description="correct / answers as a whole percent rounded down; null before an answer."
    )
    started_at: datetime | None
    decided_at: datetime | None
    retry_at: datetime | None
    granted_value: int | None
    fresh_tasks: int = Field(
        description="Tasks of the project this worker has never answered and may still be "
        "given (a task is served to a worker once, ever: retries use fresh tasks)."
    )


class TrainingWorkerRead(BaseModel):
    """One worker's attempt in the owner's training project (no answers: those are in the
    results export)."""

    worker_id: str
    status: TrainingAttemptStatus
    attempt: int
    answers: int
    correct: int
    accuracy: int | None
    started_at: datetime
    decided_at: datetime | None
    retry_at: datetime | None
    granted_value: int | None


TrainingFeedback.model_rebuild()
