"""The shape of a results record, for the OpenAPI document (the export itself streams bytes
built in `service.py`; these models describe them and are never instantiated on that path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from services.tasks.assignments.schemas import AssignmentStatus
from services.tasks.results import methods, service

ResultsFormat = TypeAliasType("ResultsFormat", service.ResultsFormat)
AggregationMethod = TypeAliasType("AggregationMethod", methods.AggregationMethod)
AggregationRunStatus = TypeAliasType("AggregationRunStatus", Literal["running", "done", "failed"])
AggregationRunStage = TypeAliasType(
    "AggregationRunStage",
    Literal["queued", "loading", "aggregating", "storing", "done", "failed"],
)


class ResultAnswer(BaseModel):
    """One worker's answer to the task (submitted, approved or rejected assignments)."""

    assignment_id: str
    worker_id: str
    answer: Any = Field(description="The answer as submitted (JSON, shaped by the task type).")
    status: AssignmentStatus
    worker_skill: float | None = Field(
        default=None,
        description="Only with `aggregation`: the method's skill estimate of this worker "
        "(see `AggregationRun`); null when the worker has no voting answer.",
    )


class ResultAggregate(BaseModel):
    """Without `aggregation`: majority over approved and submitted answers (label task types),
    nulls otherwise. With `aggregation=<method>`: that crowd-kit method's aggregate."""

    answer: Any | None = Field(description="The winning answer; null without votes.")
    agreement: float | None = Field(
        description="Share of the voting answers equal to the aggregate (labels exactly, "
        "texts ignoring case and spacing, boxes by label and overlap), 2 decimals; null "
        "without votes.",
        ge=0,
        le=1,
    )
    confidence: float | None = Field(
        default=None,
        description="Only with `aggregation`: the method's posterior probability of the "
        "answer (majority: its vote share, unrounded); null for rover and segmentation_em, "
        "which have none, and without votes.",
        ge=0,
        le=1,
    )
    method: str | None = Field(
        default=None, description="Only with `aggregation`: the method that made the aggregate."
    )


class ResultRecord(BaseModel):
    """One task's results: a JSON array of these (`format=json`) or one a line (`jsonl`)."""

    task_id: str
    external_id: str | None
    input: dict[str, Any]
    answers: list[ResultAnswer]
    aggregate: ResultAggregate


class AggregationRun(BaseModel):
    """One crowd-kit method applied to a project's answers as they stood (the cache entry
    behind `GET /v1/projects/{id}/results?aggregation=`).

    Skill estimates (`worker_skill` in the results, `skill` in the project's workers): majority
    and wawa, the worker's accuracy against the aggregate; dawid_skene, the probability of a
    right answer (from the worker's confusion matrix and the class priors); glad, the ability
    alpha (log-odds scale, 0 = guessing); mace, the probability of not spamming; rover and
    segmentation_em, the share of the worker's answers that match the aggregate."""

    id: str
    project_id: str
    method: AggregationMethod
    status: AggregationRunStatus = Field(
        description="`failed`: `error` says why; asking for the results again retries."
    )
    stage: AggregationRunStage
    progress: float = Field(ge=0, le=1, description="0 to 1 over the stages.")
    error: str | None
    task_count: int | None = Field(description="Tasks aggregated (done runs).")
    answer_count: int | None = Field(description="Voting answers read (done runs).")
    worker_count: int | None
    compute_seconds: float | None = Field(description="Time crowd-kit took (done runs).")
    created_at: datetime
    finished_at: datetime | None
    status_url: str
    results_url: str
