"""The ladder's rules, pure: which level a worker's figures reach, and how far from the next.

A worker's level is the highest level whose thresholds (and every lower level's) its figures
meet. Figures (repository.read_figures): approved answers (all time), approval rate over the
last `approval_window` decided answers, gold accuracy over the last `gold_window` gold answers,
and qualification tests passed; answers with `standing_excluded` never count in any of them.

Decided here, and documented in docs/api.md:
- Rates are whole percents rounded down (like system.approval_rate), compared exactly:
  `approved * 100 >= threshold * decided`.
- No decided answers: the approval rate is not measured, and a threshold above 0 is not met.
- Gold accuracy is judged once the window holds `min_gold_answers` gold answers; before that
  the gold threshold is waived (met), as accept's per-project gold gate waits for 3 answers: a
  worker whose projects have had no gold tasks is not held back, and gold tasks look like any
  other task, so a worker cannot choose to avoid them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.workers.settings import LevelThresholds, Settings
from shared.eligibility import MAX_LEVEL

LEVEL_NAMES: tuple[str, ...] = ("entry", "intermediate", "advanced", "expert")
assert len(LEVEL_NAMES) == MAX_LEVEL + 1

ThresholdName = Literal["approved_answers", "approval_rate", "gold_accuracy", "tests_passed"]


@dataclass(frozen=True, slots=True)
class Figures:
    """A worker's measured history, as the ladder reads it."""

    approved_answers: int
    window_decided: int
    window_approved: int
    gold_answered: int
    gold_correct: int
    tests_passed: int

    @property
    def approval_rate(self) -> int | None:
        if self.window_decided == 0:
            return None
        return (100 * self.window_approved) // self.window_decided

    @property
    def gold_accuracy(self) -> int | None:
        if self.gold_answered == 0:
            return None
        return (100 * self.gold_correct) // self.gold_answered


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    threshold: ThresholdName
    required: int
    current: int | None
    met: bool
    waived: bool
    text: str


@dataclass(frozen=True, slots=True)
class Ladder:
    """Levels 1..3's thresholds and the measuring rules, from the settings."""

    thresholds: tuple[LevelThresholds, ...]  # index 0 is level 1
    approval_window: int
    gold_window: int
    min_gold_answers: int
    grace_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Ladder:
        return cls(
            thresholds=(settings.level_1, settings.level_2, settings.level_3),
            approval_window=settings.level_approval_window,
            gold_window=settings.level_gold_window,
            min_gold_answers=settings.level_min_gold_answers,
            grace_seconds=settings.level_grace_seconds,
        )

    def of(self, level: int) -> LevelThresholds | None:
        """The thresholds of `level` (None for level 0, which has none)."""
        return None if level == 0 else self.thresholds[level - 1]

    def checks(self, figures: Figures, level: int) -> list[ThresholdCheck]:
        """Each threshold of `level` against the figures (empty for level 0)."""
        rule = self.of(level)
        if rule is None:
            return []
        return [
            _at_least(
                "approved_answers",
                rule.approved_answers,
                figures.approved_answers,
                f"{figures.approved_answers:,} of {rule.approved_answers:,} approved answers",
            ),
            self._approval(rule.approval_rate, figures),
            self._gold(rule.gold_accuracy, figures),
            _at_least(
                "tests_passed",
                rule.tests_passed,
                figures.tests_passed,
                f"{figures.tests_passed} of {rule.tests_passed} qualification tests passed",
            ),
        ]

    def meets(self, figures: Figures, level: int) -> bool:
        return all(check.met for check in self.checks(figures, level))

    def qualified_level(self, figures: Figures) -> int:
        """The highest level whose thresholds, and every lower level's, the figures meet."""
        level = 0
        while level < MAX_LEVEL and self.meets(figures, level + 1):
            level += 1
        return level

    def _approval(self, required: int, figures: Figures) -> ThresholdCheck:
        decided, approved = figures.window_decided, figures.window_approved
        window = f"last {self.approval_window:,} decided answers"
        if decided == 0:
            return ThresholdCheck(
                "approval_rate",
                required,
                None,
                met=required == 0,
                waived=False,
                text=f"approval rate not measured yet (no decided answers) of {required}% needed",
            )
        rate = figures.approval_rate
        return ThresholdCheck(
            "approval_rate",
            required,
            rate,
            met=approved * 100 >= required * decided,
            waived=False,
            text=f"{rate}% of {required}% approval rate ({approved:,} of {decided:,} approved, "
            f"{window})",
        )

    def _gold(self, required: int, figures: Figures) -> ThresholdCheck:
        answered, correct = figures.gold_answered, figures.gold_correct
        if answered < self.min_gold_answers:
            return ThresholdCheck(
                "gold_accuracy",
                required,
                figures.gold_accuracy,
                met=True,
                waived=True,
                text=f"gold accuracy waived: {answered} of {self.min_gold_answers} gold answers "
                f"before it counts ({required}% needed then)",
            )
        accuracy = figures.gold_accuracy
        return ThresholdCheck(
            "gold_accuracy",
            required,
            accuracy,
            met=correct * 100 >= required * answered,
            waived=False,
            text=f"{accuracy}% of {required}% gold accuracy ({correct:,} of {answered:,} correct, "
            f"last {self.gold_window:,} gold answers)",
        )


def _at_least(name: ThresholdName, required: int, current: int, text: str) -> ThresholdCheck:
    return ThresholdCheck(name, required, current, met=current >= required, waived=False, text=text)
