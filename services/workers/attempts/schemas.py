from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from services.workers.qualification_types.schemas import (
    Identifier,
    QualificationValue,
    Question,
)

AttemptStatus = TypeAliasType(
    "AttemptStatus", Literal["started", "pending", "granted", "rejected", "expired"]
)
RequestStatus = TypeAliasType(
    "QualificationRequestStatus", Literal["pending", "granted", "rejected"]
)
AttemptStartedStatus = TypeAliasType(
    "AttemptStartedStatus", Literal["started", "pending", "granted"]
)
AttemptSubmitStatus = TypeAliasType("AttemptSubmitStatus", Literal["granted", "pending"])


class AttemptStarted(BaseModel):
    attempt_id: str
    qualification_type_id: str
    status: AttemptStartedStatus = Field(
        description="started: answer the questions before the deadline; pending: a request "
        "without a test, waiting for the owner; granted: an auto-granted type."
    )
    questions: list[Question]
    deadline: datetime | None
    started_at: datetime
    value: int | None = Field(description="The granted value (auto-granted types)")


class AttemptSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[Identifier, Any] = Field(
        max_length=100,
        description="question_id -> option id (single_choice), option ids (multiple_choice), "
        "text, or number. Unanswered questions score 0.",
    )


class SubmitResult(BaseModel):
    attempt_id: str
    status: AttemptSubmitStatus
    score: int | None = Field(
        description="The granted qualification value: the percentage (0-100, rounded) of the "
        "maximum score, or the summed score with mapping 'sum'; null while pending."
    )
    value: int | None = Field(description="Same as score: the value the worker now holds.")
    points: int | None = Field(description="Summed score of the correct answers.")
    max_points: int | None


class AttemptRead(BaseModel):
    """The worker's own view of one of its attempts (never the answer key)."""

    attempt_id: str
    qualification_type_id: str
    status: AttemptStatus
    questions: list[Question]
    deadline: datetime | None
    started_at: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    score: int | None
    value: int | None
    reason: str | None


class QualificationRequestRead(BaseModel):
    """The owner's view of a request (a submitted attempt) to review."""

    id: str
    attempt_id: str
    qualification_type_id: str
    worker_id: str
    status: AttemptStatus
    answers: dict[str, Any] | None
    points: int | None
    max_points: int | None
    value: int | None
    reason: str | None
    started_at: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None


class RequestAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: QualificationValue = 1


class RequestReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)
