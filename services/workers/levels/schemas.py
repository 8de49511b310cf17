"""Shapes of the ladder (GET /v1/levels) and of a worker's level (GET /v1/workers/me/level)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

# Named (TypeAliasType): one `$ref`-ed component in the OpenAPI document.
ThresholdName = TypeAliasType(
    "LevelThreshold",
    Literal["approved_answers", "approval_rate", "gold_accuracy", "tests_passed"],
)


class LevelThresholdsRead(BaseModel):
    approved_answers: int = Field(description="approved answers, all time")
    approval_rate: int = Field(description="percent approved over the approval window")
    gold_accuracy: int = Field(description="percent correct over the gold window")
    tests_passed: int = Field(description="distinct qualification tests passed")


class LevelRead(BaseModel):
    level: int = Field(ge=0, le=3)
    name: str
    thresholds: LevelThresholdsRead | None = Field(description="null for level 0 (no thresholds)")


class LadderRead(BaseModel):
    qualification_type_id: str = Field(description="the system.level qualification type")
    levels: list[LevelRead]
    approval_window: int = Field(description="decided answers the approval rate is taken over")
    gold_window: int = Field(description="gold answers the gold accuracy is taken over")
    min_gold_answers: int = Field(
        description="gold answers needed before gold accuracy counts (below: threshold waived)"
    )
    grace_period_seconds: int = Field(
        description="how long a worker may stay below its level's thresholds before it falls"
    )


class ThresholdProgress(BaseModel):
    threshold: ThresholdName
    required: int
    current: int | None = Field(description="null: not measured yet (no decided answers)")
    met: bool
    waived: bool = Field(description="true: not judged yet (too few gold answers), counts as met")
    text: str = Field(examples=["312 of 500 approved answers"])


class FiguresRead(BaseModel):
    approved_answers: int
    approval_rate: int | None = Field(description="percent, rounded down; null: none decided")
    decided_in_window: int
    gold_accuracy: int | None = Field(description="percent, rounded down; null: no gold answers")
    gold_answers_in_window: int
    tests_passed: int


class NextLevelRead(BaseModel):
    level: int
    name: str
    thresholds: list[ThresholdProgress]


class LevelWarning(BaseModel):
    below_since: datetime
    falls_at: datetime
    falls_to: int
    falls_to_name: str
    missed: list[ThresholdProgress] = Field(description="the current level's thresholds missed")


class LevelChangeRead(BaseModel):
    from_level: int
    to_level: int
    changed_at: datetime


class MyLevelRead(BaseModel):
    level: int = Field(ge=0, le=3)
    name: str
    since: datetime
    figures: FiguresRead
    next_level: NextLevelRead | None = Field(description="null at the top of the ladder")
    warning: LevelWarning | None = Field(description="set during a grace period")
    history: list[LevelChangeRead] = Field(description="the last 20 changes, newest first")
