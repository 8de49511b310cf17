from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class LevelThresholds(BaseModel):
    """What a worker's measured history must reach for one level of the ladder
    (services/workers/levels/); env value: a JSON object with all four keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approved_answers: int = Field(ge=0, le=10_000_000)
    approval_rate: int = Field(ge=0, le=100, description="percent, over the approval window")
    gold_accuracy: int = Field(ge=0, le=100, description="percent, over the gold window")
    tests_passed: int = Field(ge=0, le=1_000)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKERS_", extra="ignore", frozen=True)

    # How often the stats loop folds worker_stats_deltas into worker_stats. Reads are exact either
    # way; compaction only keeps the per-worker delta rows few. 0 disables the loop.
    stats_compaction_interval_seconds: float = Field(default=10.0, ge=0, le=3600)
    stats_compaction_batch: int = Field(default=10_000, ge=1, le=1_000_000)

    # The worker ladder (GET /v1/levels): levels 1-3's thresholds (level 0 has none), the windows
    # the rates are measured over, and the grace period before a level falls.
    level_1: LevelThresholds = LevelThresholds(
        approved_answers=50, approval_rate=90, gold_accuracy=70, tests_passed=1
    )
    level_2: LevelThresholds = LevelThresholds(
        approved_answers=500, approval_rate=95, gold_accuracy=80, tests_passed=2
    )
    level_3: LevelThresholds = LevelThresholds(
        approved_answers=2_000, approval_rate=97, gold_accuracy=90, tests_passed=3
    )
    level_approval_window: int = Field(default=1_000, ge=1, le=100_000)
    level_gold_window: int = Field(default=200, ge=1, le=100_000)
    # Gold accuracy is judged once the gold window holds this many answers; before that the
    # gold threshold is waived (a worker whose projects have had no gold tasks is not stuck).
    level_min_gold_answers: int = Field(default=10, ge=1, le=100_000)
    level_grace_seconds: int = Field(default=7 * 86_400, ge=0, le=365 * 86_400)
    # How often the levels loop recomputes queued workers and applies falls that are due.
    # 0 disables the loop (the queue then waits for a process that runs it).
    level_interval_seconds: float = Field(default=5.0, ge=0, le=3600)
    level_batch: int = Field(default=200, ge=1, le=10_000)

    @model_validator(mode="after")
    def _ladder_climbs(self) -> Settings:
        """A higher level asks at least what a lower one does: otherwise "the next level's
        thresholds" would show figures the worker already had to beat."""
        for lower, higher in ((self.level_1, self.level_2), (self.level_2, self.level_3)):
            for name in LevelThresholds.model_fields:
                if getattr(higher, name) < getattr(lower, name):
                    raise ValueError(f"level thresholds must not decrease: {name}")
        return self
