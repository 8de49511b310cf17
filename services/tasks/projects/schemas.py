"""Project request and response models (contract: "Projects, tasks, assignments")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from typing_extensions import TypeAliasType

from services.tasks.training.schemas import ProjectKind, TrainingRule
from shared.eligibility import QualificationRequirement
from shared.money import Money, MoneyOut

# Named aliases: each is one component of the OpenAPI document (`$ref`), so a generated client
# has one type per enum; the names are part of the contract (docs/api.md).
ProjectStatus = TypeAliasType("ProjectStatus", Literal["draft", "published", "paused", "closed"])
TaskTypeName = TypeAliasType(
    "TaskType",
    Literal[
        "classification",
        "sentiment",
        "transcription",
        "bounding_box",
        "free_form",
        "mturk_question",
    ],
)

MAX_REWARD_CENTS = 10_000_000  # 100,000.00: the largest deposit the test provider takes

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

Description = Annotated[str, Field(max_length=10_000)]
Instructions = Annotated[str, Field(max_length=100_000, description="Markdown guidelines.")]
AssignmentsPerTask = Annotated[int, Field(ge=1, le=100)]
AssignmentDuration = Annotated[int, Field(ge=30, le=86_400)]
Lifetime = Annotated[int, Field(ge=60, le=31_536_000)]
AutoApprove = Annotated[int, Field(ge=0, le=2_592_000)]
EstimatedSeconds = Annotated[int, Field(ge=1, le=86_400)]
GoldAccuracy = Annotated[int, Field(ge=0, le=100)]


def _reward_in_range(cents: int) -> int:
    if cents < 1:
        raise ValueError("reward must be at least 0.01")
    if cents > MAX_REWARD_CENTS:
        raise ValueError("reward must be at most 100000.00")
    return cents


MAX_MIN_HOURLY_RATE_CENTS = 100_000  # 1000.00 an hour


def _min_hourly_rate_in_range(cents: int | None) -> int | None:
    if cents is None:
        return None
    if cents < 1:
        raise ValueError("min_hourly_rate must be at least 0.01")
    if cents > MAX_MIN_HOURLY_RATE_CENTS:
        raise ValueError("min_hourly_rate must be at most 1000.00")
    return cents


MIN_HOURLY_RATE_DESCRIPTION = (
    "Pay floor (per-answer projects only): approved answers are topped up so that the reward "
    "pays at least this per hour of the median measured working time of their period "
    "(docs/api.md, 'Pay floor'). Publishing reserves the worst case on top of the slots."
)


PayModel = TypeAliasType("PayModel", Literal["per_assignment", "hourly"])
MAX_HOURLY_RATE_CENTS = 100_000  # 1000.00 an hour
WorkHours = Annotated[
    float,
    Field(
        gt=0,
        le=1_000_000,
        multiple_of=0.01,
        description="Hours, in steps of 0.01 h (36 seconds).",
    ),
]
IdleTimeout = Annotated[int, Field(ge=30, le=3_600)]


def _hourly_rate_in_range(cents: int | None) -> int | None:
    if cents is None:
        return None
    if cents < 1:
        raise ValueError("hourly_rate must be at least 0.01")
    if cents > MAX_HOURLY_RATE_CENTS:
        raise ValueError("hourly_rate must be at most 1000.00")
    return cents


def hours_to_seconds(hours: float) -> int:
    """0.01 h steps are whole seconds (36 s)."""
    return round(hours * 3600)


def _unique_labels(labels: list[str] | None) -> list[str] | None:
    if labels is not None and len(set(labels)) != len(labels):
        raise ValueError("labels must be unique")
    return labels


LevelKey = TypeAliasType("LevelKey", Literal["1", "2", "3"])
REWARD_BY_LEVEL_DESCRIPTION = (
    'Pay tiers (per-answer projects): the reward of a worker of each level (keys "1" to '
    '"3"; level 0 earns `reward`), fixed when the worker accepts. Each tier is at least '
    "`reward` and tiers never decrease with the level; a level without its own tier earns the "
    "tier of the highest level below it. Publishing reserves the highest tier (+ fee) per slot; "
    "approval pays the assignment's tier and releases the rest (docs/api.md, 'Pay tiers')."
)
HOURLY_RATE_BY_LEVEL_DESCRIPTION = (
    'Pay tiers (hourly projects): the hourly rate of a worker of each level (keys "1" to '
    '"3"; level 0 earns `hourly_rate`), fixed when the worker opens a work session. Same '
    "rules as reward_by_level; the budget reservation uses the highest tier."
)


def _tiers_in_range(tiers: dict[str, int] | None, check: Any) -> dict[str, int] | None:
    if tiers is None:
        return None
    return {key: check(cents) for key, cents in sorted(tiers.items())}


def _reward_tiers(tiers: dict[str, int] | None) -> dict[str, int] | None:
    return _tiers_in_range(tiers, _reward_in_range)


def _hourly_rate_tiers(tiers: dict[str, int] | None) -> dict[str, int] | None:
    return _tiers_in_range(tiers, _hourly_rate_in_range)


RewardByLevel = Annotated[dict[LevelKey, Money], Field(min_length=1)]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    instructions: Instructions = ""
    keywords: list[Keyword] = Field(default_factory=list, max_length=20)
    task_type: TaskTypeName
    labels: list[Label] | None = Field(default=None, min_length=2, max_length=100)
    multi_label: bool = False
    answer_schema: dict[str, Any] | None = None
    pay_model: PayModel = Field(
        default="per_assignment",
        description="`per_assignment`: each approved answer pays `reward`; `hourly`: workers "
        "are paid `hourly_rate` for the time measured in their work sessions (no `reward`).",
    )
    reward: Money | None = Field(
        default=None,
        description="Per approved answer; required for per_assignment projects, "
        "refused for hourly ones.",
    )
    hourly_rate: Money | None = Field(
        default=None, description="Hourly projects (required there): pay per measured hour."
    )
    max_hours_per_worker_per_week: WorkHours | None = Field(
        default=None,
        description="Hourly projects: the most hours one worker is paid per ISO week (UTC) in "
        "this project; null: no cap.",
    )
    budget_hours: WorkHours | None = Field(
        default=None,
        description="Hourly projects (required there): total payable hours; publishing "
        "reserves budget_hours x hourly_rate plus the fee.",
    )
    idle_timeout_seconds: IdleTimeout | None = Field(
        default=None,
        description="Hourly projects: a gap between activity events longer than this is idle "
        "and not paid, and ends the session (default 300).",
    )
    assignments_per_task: AssignmentsPerTask = 1
    assignment_duration_seconds: AssignmentDuration
    lifetime_seconds: Lifetime
    auto_approve_seconds: AutoApprove = 259_200
    estimated_seconds_per_assignment: EstimatedSeconds | None = None
    qualification_requirements: list[QualificationRequirement] = Field(
        default_factory=list, max_length=10
    )
    min_gold_accuracy: GoldAccuracy | None = None
    min_hourly_rate: Money | None = Field(default=None, description=MIN_HOURLY_RATE_DESCRIPTION)
    kind: ProjectKind = Field(
        default="standard",
        description="`training`: practice work that grants `training.qualification_type_id` "
        "(docs/api.md, 'Training projects'); fixed at creation.",
    )
    training: TrainingRule | None = Field(
        default=None, description="Training projects (required there): what passing grants."
    )
    reward_by_level: RewardByLevel | None = Field(
        default=None, description=REWARD_BY_LEVEL_DESCRIPTION
    )
    hourly_rate_by_level: RewardByLevel | None = Field(
        default=None, description=HOURLY_RATE_BY_LEVEL_DESCRIPTION
    )

    @field_validator("reward")
    @classmethod
    def _reward(cls, v: int | None) -> int | None:
        # 0.00 only for a training project: the service checks it against `kind`.
        return v if v is None or v == 0 else _reward_in_range(v)

    _hourly_rate = field_validator("hourly_rate")(_hourly_rate_in_range)
    _reward_by_level = field_validator("reward_by_level")(_reward_tiers)
    _hourly_rate_by_level = field_validator("hourly_rate_by_level")(_hourly_rate_tiers)
    _labels = field_validator("labels")(_unique_labels)
    _min_hourly_rate = field_validator("min_hourly_rate")(_min_hourly_rate_in_range)


class ProjectUpdate(BaseModel):
    """Only the fields sent change. In a draft everything may change; once published, only the
    texts and the rules that move no money (see `EDITABLE_WHEN_LIVE` in the service)."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    keywords: list[Keyword] | None = Field(default=None, max_length=20)
    task_type: TaskTypeName | None = None
    labels: list[Label] | None = Field(default=None, min_length=2, max_length=100)
    multi_label: bool | None = None
    answer_schema: dict[str, Any] | None = None
    reward: Money | None = None
    assignments_per_task: AssignmentsPerTask | None = None
    assignment_duration_seconds: AssignmentDuration | None = None
    lifetime_seconds: Lifetime | None = None
    auto_approve_seconds: AutoApprove | None = None
    estimated_seconds_per_assignment: EstimatedSeconds | None = None
    qualification_requirements: list[QualificationRequirement] | None = Field(
        default=None, max_length=10
    )
    min_gold_accuracy: GoldAccuracy | None = None
    min_hourly_rate: Money | None = Field(default=None, description=MIN_HOURLY_RATE_DESCRIPTION)
    reward_by_level: RewardByLevel | None = Field(
        default=None,
        description=REWARD_BY_LEVEL_DESCRIPTION + " Editable while a draft; null removes them.",
    )

    _min_hourly_rate = field_validator("min_hourly_rate")(_min_hourly_rate_in_range)
    _reward_by_level = field_validator("reward_by_level")(_reward_tiers)

    @field_validator("reward")
    @classmethod
    def _reward(cls, v: int | None) -> int | None:
        # 0.00 only for a training project: the service checks it against `kind`.
        return v if v is None or v == 0 else _reward_in_range(v)

    _labels = field_validator("labels")(_unique_labels)


class ProjectCounts(BaseModel):
    tasks: int
    open_slots: int
    accepted: int
    submitted: int
    approved: int
    rejected: int


class ProjectMoney(BaseModel):
    reserved: MoneyOut = Field(description="Held for slots not yet paid or released.")
    spent: MoneyOut = Field(
        description="Paid for approved assignments (reward + fee), timesheets and pay floor "
        "top-ups (+ fee) from the reservation."
    )


class ProjectRead(BaseModel):
    id: str
    requester_id: str
    status: ProjectStatus
    title: str
    description: str
    instructions: str
    keywords: list[str]
    task_type: TaskTypeName
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] = Field(
        description="The JSON Schema every answer (and gold answer) must satisfy; derived from "
        "task_type and labels for the built-in types."
    )
    reward: MoneyOut
    fee_per_assignment: MoneyOut
    assignments_per_task: int
    assignment_duration_seconds: int
    lifetime_seconds: int
    auto_approve_seconds: int
    estimated_seconds_per_assignment: int | None
    qualification_requirements: list[QualificationRequirement]
    min_gold_accuracy: int | None
    min_hourly_rate: MoneyOut | None = Field(description="The pay floor; null: none.")
    pay_model: PayModel
    hourly_rate: MoneyOut | None = Field(description="Hourly projects: pay per measured hour.")
    kind: ProjectKind = Field(default="standard", description="`standard` or `training`.")
    training: TrainingRule | None = Field(
        default=None, description="A training project's rule; null for a standard project."
    )
    reward_by_level: dict[LevelKey, MoneyOut] | None = Field(
        default=None, description="Pay tiers of a per-answer project; null: one reward for all."
    )
    hourly_rate_by_level: dict[LevelKey, MoneyOut] | None = Field(
        default=None, description="Pay tiers of an hourly project; null: one rate for all."
    )
    max_hours_per_worker_per_week: float | None
    budget_hours: float | None
    idle_timeout_seconds: int | None
    budget_hours_used: float | None = Field(
        description="Hourly projects: measured hours taken from the budget so far."
    )
    counts: ProjectCounts
    money: ProjectMoney
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    closed_at: datetime | None
