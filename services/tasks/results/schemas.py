"""The shape of a results record, for the OpenAPI document (the export itself streams bytes
built in `service.py`; these models describe them and are never instantiated on that path)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from services.tasks.assignments.schemas import AssignmentStatus
from services.tasks.results import service

ResultsFormat = TypeAliasType("ResultsFormat", service.ResultsFormat)


class ResultAnswer(BaseModel):
    """One worker's answer to the task (submitted, approved or rejected assignments)."""

    assignment_id: str
    worker_id: str
    answer: Any = Field(description="The answer as submitted (JSON, shaped by the task type).")
    status: AssignmentStatus


class ResultAggregate(BaseModel):
    """Majority over approved and submitted answers (label task types); nulls otherwise."""

    answer: Any | None = Field(description="The winning answer; null without votes.")
    agreement: float | None = Field(
        description="Votes for the winner / votes cast, 2 decimals; null without votes.",
        ge=0,
        le=1,
    )


class ResultRecord(BaseModel):
    """One task's results: a JSON array of these (`format=json`) or one a line (`jsonl`)."""

    task_id: str
    external_id: str | None
    input: dict[str, Any]
    answers: list[ResultAnswer]
    aggregate: ResultAggregate
