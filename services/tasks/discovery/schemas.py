"""What a worker sees of published projects: the work list and one project's preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from services.tasks.projects.schemas import PayModel, TaskTypeName
from services.tasks.training.schemas import ProjectKind
from shared.money import MoneyOut

# Named: one `HourlyRateBasis` component in the OpenAPI document (docs/api.md).
HourlyRateBasis = TypeAliasType("HourlyRateBasis", Literal["measured", "estimate", "hourly_rate"])


class RequesterStats(BaseModel):
    approval_rate_given: float | None = Field(
        description="Percent of the requester's decided assignments (all projects) it approved; "
        "null before its first decision."
    )
    median_review_seconds: int | None = Field(
        description="Median time from submission to approval or rejection (auto-approvals "
        "included); null before its first decision."
    )
    effective_hourly_pay: MoneyOut | None = Field(
        default=None,
        description="Median over the requester's approved answers (all projects) of what each "
        "paid per hour of platform-measured work: reward + pay floor top-up (once settled) "
        "over the working time (accept to submit, capped at the assignment duration); an "
        "answer of an hourly "
        "project counts at its project's hourly_rate. Null before 3 such answers, and "
        "per-answer answers count only once 300 s of their work were measured.",
    )
    timesheets_disputed_rate: float | None = Field(
        default=None,
        description="Percent of the requester's reviewed timesheets (approved or disputed) it "
        "disputed; null before its first reviewed timesheet.",
    )
    pay_floor_set: bool = Field(
        default=False,
        description="Whether this project guarantees a pay floor (min_hourly_rate is set).",
    )
    rejections_given: int = Field(
        default=0,
        description="Rejections the requester has given (all projects), including those later "
        "overturned.",
    )
    appeals_received: int = Field(
        default=0, description="Appeals workers made against the requester's rejections."
    )
    appeals_overturned: int = Field(
        default=0,
        description="Of those, appeals the requester overturned, plus appeals it left "
        "unanswered for 7 days (counted as overturned).",
    )


class WorkProject(BaseModel):
    id: str
    requester_id: str
    title: str
    description: str
    keywords: list[str]
    task_type: TaskTypeName
    reward: MoneyOut
    pay_model: PayModel = Field(
        default="per_assignment",
        description="per_assignment: paid `reward` per approved answer; hourly: paid "
        "`hourly_rate` per hour of measured work.",
    )
    kind: ProjectKind = Field(
        default="standard",
        description="`training`: practice with instant feedback that grants a qualification "
        "(GET /v1/work/projects/{id}/training shows your progress).",
    )
    hourly_rate: MoneyOut | None = Field(default=None, description="An hourly project's rate.")
    min_hourly_rate: MoneyOut | None = Field(
        default=None,
        description="A per-answer project's pay floor: approved answers are topped up to this "
        "rate over the median measured working time of their week; null: no floor.",
    )
    reward_by_level: dict[str, MoneyOut] | None = Field(
        default=None,
        description='Pay tiers: the reward of each worker level ("1"-"3"; level 0 earns '
        "`reward`); null: one reward for every level.",
    )
    hourly_rate_by_level: dict[str, MoneyOut] | None = Field(
        default=None, description="Pay tiers of an hourly project; null: one rate for all."
    )
    reward_for_your_level: MoneyOut | None = Field(
        default=None,
        description="Per-answer projects: what an answer accepted now pays you, the tier of your "
        "level (system.level), fixed when you accept; `reward` without tiers. Null for hourly.",
    )
    hourly_rate_for_your_level: MoneyOut | None = Field(
        default=None,
        description="Hourly projects: the rate a session you open now is paid at (your level's "
        "tier, fixed at open); `hourly_rate` without tiers. Null for per-answer projects.",
    )
    available_tasks: int = Field(
        description="Tasks this worker can accept now (open slots, not expired, not answered)."
    )
    assignment_duration_seconds: int
    estimated_seconds_per_assignment: int | None
    hourly_rate_estimate: MoneyOut | None = Field(
        description="reward per hour from the median measured working time (accept to submit) "
        "once 3 answers and at least 300 s of measured work in all exist (a rate over less "
        "measured time means nothing), else from estimated_seconds_per_assignment; null with "
        "neither. An hourly project's is its hourly_rate (basis `hourly_rate`)."
    )
    hourly_rate_basis: HourlyRateBasis | None = Field(
        default=None,
        description="What hourly_rate_estimate comes from: the measured median working time, "
        "the requester's estimate, or nothing (null rate).",
    )
    measured_seconds: int = Field(
        default=0,
        description="Measured working time (accept to submit, whole seconds) of this project's "
        "submitted and approved answers so far, all workers together.",
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
