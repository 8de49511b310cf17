"""The ladder's decisions: recompute a worker's level, and show it.

Rules (docs/api.md, "Worker levels"):
- A rise takes effect at the recompute that measures it, straight to the highest level met.
- A fall waits: the first recompute that finds the worker below its level's thresholds starts a
  grace period (`below_since`, `fall_at = below_since + grace`); any recompute that finds the
  figures back ends it; the first recompute at or after `fall_at` that still finds them below
  lets the level fall to the highest level the figures meet then. Figures change only with the
  worker's answers and tests, each of which queues a recompute, and the loop sweeps the due
  falls: so "below the threshold continuously for the whole grace period" is what it checks.
- Every change is a history row, with the figures it was decided on.
The clock is the caller's (`now`): the loop passes the service's clock, tests freeze it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Literal

from services.workers.levels import repository
from services.workers.levels.ladder import LEVEL_NAMES, Figures, Ladder, ThresholdCheck
from services.workers.levels.schemas import (
    FiguresRead,
    LadderRead,
    LevelChangeRead,
    LevelRead,
    LevelThresholdsRead,
    LevelWarning,
    MyLevelRead,
    NextLevelRead,
    ThresholdProgress,
)
from shared.database import Db, Writable, WriteDb
from shared.eligibility import LEVEL_TYPE_ID, MAX_LEVEL
from shared.errors import NotFound

HISTORY_SHOWN = 20


class WorkerNotFound(NotFound):
    code = "not_found"


def ladder_read(ladder: Ladder) -> LadderRead:
    levels = [LevelRead(level=0, name=LEVEL_NAMES[0], thresholds=None)]
    for level in range(1, MAX_LEVEL + 1):
        rule = ladder.of(level)
        assert rule is not None
        levels.append(
            LevelRead(
                level=level,
                name=LEVEL_NAMES[level],
                thresholds=LevelThresholdsRead(**rule.model_dump()),
            )
        )
    return LadderRead(
        qualification_type_id=LEVEL_TYPE_ID,
        levels=levels,
        approval_window=ladder.approval_window,
        gold_window=ladder.gold_window,
        min_gold_answers=ladder.min_gold_answers,
        grace_period_seconds=ladder.grace_seconds,
    )


async def figures_of(db: Db, ladder: Ladder, worker_id: str) -> Figures:
    return await repository.read_figures(
        db,
        worker_id=worker_id,
        approval_window=ladder.approval_window,
        gold_window=ladder.gold_window,
    )


async def recompute_worker(db: WriteDb, ladder: Ladder, *, worker_id: str, now: datetime) -> int:
    """Decide the worker's level on its current figures (in the caller's transaction, under the
    level row's lock); returns the level after."""
    state = await repository.lock_level(db, worker_id=worker_id, now=now)
    figures = await figures_of(db, ladder, worker_id)
    qualified = ladder.qualified_level(figures)
    level, since = state.level, state.since
    below_since, fall_at = state.below_since, state.fall_at
    if qualified > level or (qualified < level and fall_at is not None and now >= fall_at):
        await repository.insert_change(
            db,
            worker_id=worker_id,
            from_level=level,
            to_level=qualified,
            changed_at=now,
            figures=asdict(figures),
        )
        level, since, below_since, fall_at = qualified, now, None, None
    elif qualified == level:
        below_since = fall_at = None  # at (or back at) the level's thresholds: no warning
    elif below_since is None:  # newly below: the grace period starts
        below_since, fall_at = now, now + timedelta(seconds=ladder.grace_seconds)
    await repository.save_level(
        db,
        worker_id=worker_id,
        level=level,
        since=since,
        below_since=below_since,
        fall_at=fall_at,
        checked_at=now,
    )
    return level


async def on_test_passed(
    db: Writable,
    *,
    worker_id: str,
    qualification_type_id: str,
    value: int,
    via: Literal["test", "training"],
    now: datetime,
) -> None:
    """A qualification test (or a training project) granted the worker `value`, in the
    granting transaction: a test scored 0 was not passed; a pass is a level figure, so the
    worker's level is queued for a recompute."""
    if via == "test" and value <= 0:
        return
    await repository.record_test_passed(
        db, worker_id=worker_id, qualification_type_id=qualification_type_id, via=via, now=now
    )
    await repository.enqueue(db, worker_id=worker_id)


def _progress(check: ThresholdCheck) -> ThresholdProgress:
    return ThresholdProgress(
        threshold=check.threshold,
        required=check.required,
        current=check.current,
        met=check.met,
        waived=check.waived,
        text=check.text,
    )


async def my_level(db: Db, ladder: Ladder, *, worker_id: str) -> MyLevelRead:
    """The level as the last recompute decided it (what accept reads), with the figures as
    they are now. The warning is shown while a grace period runs and the figures still miss the
    level (figures back above end it at the next recompute, seconds later)."""
    state = await repository.read_level(db, worker_id=worker_id)
    if state is None:
        raise WorkerNotFound("Worker not found.")
    figures = await figures_of(db, ladder, worker_id)
    level = state.level
    next_level = None
    if level < MAX_LEVEL:
        next_level = NextLevelRead(
            level=level + 1,
            name=LEVEL_NAMES[level + 1],
            thresholds=[_progress(c) for c in ladder.checks(figures, level + 1)],
        )
    warning = None
    missed = [c for c in ladder.checks(figures, level) if not c.met]
    if state.below_since is not None and state.fall_at is not None and missed:
        falls_to = min(ladder.qualified_level(figures), level - 1)
        warning = LevelWarning(
            below_since=state.below_since,
            falls_at=state.fall_at,
            falls_to=falls_to,
            falls_to_name=LEVEL_NAMES[falls_to],
            missed=[_progress(c) for c in missed],
        )
    history = await repository.list_changes(db, worker_id=worker_id, limit=HISTORY_SHOWN)
    return MyLevelRead(
        level=level,
        name=LEVEL_NAMES[level],
        since=state.since,
        figures=FiguresRead(
            approved_answers=figures.approved_answers,
            approval_rate=figures.approval_rate,
            decided_in_window=figures.window_decided,
            gold_accuracy=figures.gold_accuracy,
            gold_answers_in_window=figures.gold_answered,
            tests_passed=figures.tests_passed,
        ),
        next_level=next_level,
        warning=warning,
        history=[
            LevelChangeRead(from_level=h.from_level, to_level=h.to_level, changed_at=h.changed_at)
            for h in history
        ],
    )
