"""SQL of the worker ladder: the figures' bounded windows, the level row, history and queue.

The figures are one hand-tuned statement (`FIGURES_SQL`): every part reads a bounded range of
one index, so a recompute costs the same for a worker with ten answers or a million:
- approved answers: the worker's stats counters (compacted row + pending deltas: exact; the
  stats trigger leaves `standing_excluded` answers out),
- approval window: the newest `$2` entries of `ix_assignments_worker_decided` (partial: decided
  and not standing_excluded; status is INCLUDEd, so an index-only scan),
- gold window: the newest `$3` entries of `ix_assignments_worker_gold`,
- tests passed: the worker's `worker_tests_passed` rows (a primary-key range).
Held there by tests/services/workers/levels/test_figures_plan.py (4,500 answers: 1,000 and
200 index entries read, no sequential scan). The queue and the due falls are claimed
`FOR UPDATE SKIP LOCKED`, so replicas split the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.workers.levels.ladder import Figures
from shared.database import Db, Writable, as_row, as_rows
from shared.eligibility import worker_stats_sql
from shared.ids import new_id
from shared.models.workers import WorkerLevelChange

FIGURES_SQL = f"""
SELECT st.approved AS approved_answers,
       w.decided AS window_decided, w.approved AS window_approved,
       g.answered AS gold_answered, g.correct AS gold_correct,
       t.passed AS tests_passed
FROM ({worker_stats_sql("$1")}) AS st,
     (SELECT count(*) AS decided, count(*) FILTER (WHERE d.status = 'approved') AS approved
        FROM (SELECT a.status FROM assignments a
               WHERE a.worker_id = $1 AND a.status IN ('approved', 'rejected')
                 AND NOT a.standing_excluded
               ORDER BY a.reviewed_at DESC, a.id DESC
               LIMIT $2) AS d) AS w,
     (SELECT count(*) AS answered, count(*) FILTER (WHERE x.gold_correct) AS correct
        FROM (SELECT a.gold_correct FROM assignments a
               WHERE a.worker_id = $1 AND a.gold_correct IS NOT NULL AND NOT a.standing_excluded
               ORDER BY a.submitted_at DESC, a.id DESC
               LIMIT $3) AS x) AS g,
     (SELECT count(*) AS passed FROM worker_tests_passed WHERE worker_id = $1) AS t
"""


async def read_figures(
    db: Db, *, worker_id: str, approval_window: int, gold_window: int
) -> Figures:
    row = await db.fetchrow(FIGURES_SQL, worker_id, approval_window, gold_window)
    assert row is not None
    return Figures(**{k: int(v) for k, v in row.items()})


@dataclass(frozen=True, slots=True)
class LevelState:
    """The worker's level row; `since` falls back to the account's creation for a worker the
    ladder never recorded (level 0 since it signed up)."""

    level: int
    since: datetime
    below_since: datetime | None
    fall_at: datetime | None


# The row the recompute decides on, locked: concurrent recomputes of one worker (the queue and
# the due falls, several processes) take turns. A worker without a row gets one at level 0,
# since its sign-up.
_ENSURE_LEVEL_SQL = """
INSERT INTO worker_levels (worker_id, level, since)
SELECT $1::text, 0, coalesce((SELECT created_at FROM accounts WHERE id = $1::text), $2)
ON CONFLICT (worker_id) DO NOTHING
"""
_LOCK_LEVEL_SQL = """
SELECT level, since, below_since, fall_at FROM worker_levels WHERE worker_id = $1 FOR UPDATE
"""
_READ_LEVEL_SQL = """
SELECT coalesce(l.level, 0) AS level, coalesce(l.since, a.created_at) AS since,
       l.below_since, l.fall_at
FROM accounts a LEFT JOIN worker_levels l ON l.worker_id = a.id
WHERE a.id = $1
"""


async def lock_level(db: Writable, *, worker_id: str, now: datetime) -> LevelState:
    await db.execute(_ENSURE_LEVEL_SQL, worker_id, now)
    row = as_row(LevelState, await db.fetchrow(_LOCK_LEVEL_SQL, worker_id))
    assert row is not None
    return row


async def read_level(db: Db, *, worker_id: str) -> LevelState | None:
    """None for an unknown account."""
    return as_row(LevelState, await db.fetchrow(_READ_LEVEL_SQL, worker_id))


_SAVE_LEVEL_SQL = """
UPDATE worker_levels
SET level = $2, since = $3, below_since = $4, fall_at = $5, checked_at = $6
WHERE worker_id = $1
"""


async def save_level(
    db: Writable,
    *,
    worker_id: str,
    level: int,
    since: datetime,
    below_since: datetime | None,
    fall_at: datetime | None,
    checked_at: datetime,
) -> None:
    await db.execute(_SAVE_LEVEL_SQL, worker_id, level, since, below_since, fall_at, checked_at)


@dataclass(frozen=True, slots=True)
class LevelChangeRow:
    id: str
    from_level: int
    to_level: int
    changed_at: datetime
    figures: dict[str, Any]


_CHANGE_COLS = (
    WorkerLevelChange.id,
    WorkerLevelChange.from_level,
    WorkerLevelChange.to_level,
    WorkerLevelChange.changed_at,
    WorkerLevelChange.figures,
)


async def insert_change(
    db: Writable,
    *,
    worker_id: str,
    from_level: int,
    to_level: int,
    changed_at: datetime,
    figures: dict[str, Any],
) -> None:
    stmt = WorkerLevelChange.__table__.insert().values(
        id=new_id(),
        worker_id=worker_id,
        from_level=from_level,
        to_level=to_level,
        changed_at=changed_at,
        figures=figures,
    )
    await db.execute(stmt)


async def list_changes(db: Db, *, worker_id: str, limit: int) -> list[LevelChangeRow]:
    stmt = (
        select(*_CHANGE_COLS)
        .where(WorkerLevelChange.worker_id == worker_id)
        .order_by(WorkerLevelChange.id.desc())
        .limit(limit)
    )
    return as_rows(LevelChangeRow, await db.fetch(stmt))


_ENQUEUE_SQL = """
INSERT INTO worker_level_queue (worker_id) VALUES ($1) ON CONFLICT (worker_id) DO NOTHING
"""


_TEST_PASSED_SQL = """
INSERT INTO worker_tests_passed (worker_id, qualification_type_id, via, passed_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id, qualification_type_id) DO NOTHING
"""


async def record_test_passed(
    db: Writable, *, worker_id: str, qualification_type_id: str, via: str, now: datetime
) -> None:
    """A passed test counts once per qualification type, however often it is passed again."""
    await db.execute(_TEST_PASSED_SQL, worker_id, qualification_type_id, via, now)


async def enqueue(db: Writable, *, worker_id: str) -> None:
    """Ask for the worker's level to be recomputed (in the caller's transaction)."""
    await db.execute(_ENQUEUE_SQL, worker_id)


# Workers to recompute, taken off the queue in the claiming transaction: a recompute that fails
# rolls back and leaves them queued. Worker order, so the level rows are locked in one order.
CLAIM_QUEUED_SQL = """
DELETE FROM worker_level_queue q
WHERE q.worker_id IN (
    SELECT worker_id FROM worker_level_queue ORDER BY worker_id LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING q.worker_id
"""

# Levels whose grace period has run out (`ix_worker_levels_fall_at`); their recompute either
# lets the level fall or, if the figures are back, ends the warning: either way `fall_at` clears.
CLAIM_DUE_SQL = """
SELECT worker_id FROM worker_levels
WHERE fall_at IS NOT NULL AND fall_at <= $1
ORDER BY fall_at, worker_id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def claim_queued(db: Writable, *, batch: int) -> list[str]:
    return sorted(r["worker_id"] for r in await db.fetch(CLAIM_QUEUED_SQL, batch))


async def claim_due(db: Writable, *, now: datetime, batch: int) -> list[str]:
    return [r["worker_id"] for r in await db.fetch(CLAIM_DUE_SQL, now, batch)]
