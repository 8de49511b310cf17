from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProjectRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: str = Field(min_length=1, max_length=64)
    requester_id: str = Field(min_length=1, max_length=64)
    requirements: list[dict[str, Any]] = Field(default_factory=list, max_length=10)


class EligibilityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[ProjectRulesIn] = Field(max_length=1000)


class UnmetRequirementOut(BaseModel):
    qualification_type_id: str
    comparator: str
    values: list[Any]
    actual: int | str | None
    reason: str
    guard: str


class GuardResultOut(BaseModel):
    ok: bool
    failures: list[UnmetRequirementOut]


class EligibilityOut(BaseModel):
    blocked: bool
    discover: GuardResultOut
    preview: GuardResultOut
    accept: GuardResultOut


class EligibilityAnswer(BaseModel):
    results: dict[str, EligibilityOut]


class TrainingGrantIn(BaseModel):
    """A qualification granted by a training project's pass (services/tasks/training), sent
    through the tasks outbox: `key` names the pass, and the grant is set to `value` however
    often the message arrives."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=255)
    qualification_type_id: str = Field(min_length=1, max_length=64)
    worker_id: str = Field(min_length=1, max_length=64)
    requester_id: str = Field(min_length=1, max_length=64)
    project_id: str = Field(min_length=1, max_length=64)
    value: int = Field(ge=0, le=100)
