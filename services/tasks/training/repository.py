"""SQL for training: the worker's attempt (training_progress), the checks of a training
project's tasks, and the type link (hand-tuned where they run inside accept and submit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.database import Db, Writable, as_row, as_rows
from shared.models.training import TrainingProgress
from shared.pagination import newest_first

# --------------------------------------------------------------------------- the type link

# A training project grants one of its requester's own types: never a system type (those are
# computed, not granted), never another requester's (indistinguishable from a missing one).
_OWNED_TYPE_SQL = """
SELECT EXISTS (
    SELECT 1 FROM qualification_types
    WHERE id = $1 AND owner_id = $2 AND NOT is_system
)
"""


async def owns_type(db: Db, *, type_id: str, requester_id: str) -> bool:
    return bool(await db.fetchval(_OWNED_TYPE_SQL, type_id, requester_id))


# --------------------------------------------------------------------------- tasks

_TASKS_WITHOUT_GOLD_SQL = """
SELECT id, gold_answer IS NULL AS no_gold FROM tasks
WHERE project_id = $1 AND (gold_answer IS NULL OR coalesce(btrim(explanation), '') = '')
ORDER BY id
LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class IncompleteTask:
    id: str
    no_gold: bool


async def incomplete_tasks(db: Db, *, project_id: str, limit: int) -> list[IncompleteTask]:
    """Tasks lacking a gold answer or an explanation (at most `limit`), in id order."""
    return [
        IncompleteTask(id=r["id"], no_gold=r["no_gold"])
        for r in await db.fetch(_TASKS_WITHOUT_GOLD_SQL, project_id, limit)
    ]


async def task_count(db: Db, *, project_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project_id))


# --------------------------------------------------------------------------- admission


@dataclass(frozen=True, slots=True)
class Admission:
    status: str
    attempt: int
    retry_at: datetime | None
    now: datetime


# Before a training claim: the worker's first attempt starts (the row is created), or, after a
# failure whose retry time has come, the next attempt starts with its counts at zero; of two
# concurrent accepts one starts it (the row lock), the other then sees it in progress. One
# statement, atomic on its own. When nothing changed, the row as it was (the statement's
# snapshot); no row at all means a concurrent accept created it an instant ago: in progress.
_ADMIT_SQL = """
WITH started AS (
    INSERT INTO training_progress AS t (project_id, worker_id)
    VALUES ($1, $2)
    ON CONFLICT (project_id, worker_id) DO UPDATE
    SET attempt = t.attempt + 1, status = 'in_progress', answered = 0, correct = 0,
        started_at = now(), decided_at = NULL, retry_at = NULL, granted_value = NULL,
        updated_at = now()
    WHERE t.status = 'failed' AND t.retry_at <= now()
    RETURNING t.status, t.attempt, t.retry_at
)
SELECT status, attempt, retry_at, now() AS now FROM started
UNION ALL
SELECT status, attempt, retry_at, now() AS now FROM training_progress
WHERE project_id = $1 AND worker_id = $2 AND NOT EXISTS (SELECT 1 FROM started)
"""


async def admit(db: Writable, *, project_id: str, worker_id: str) -> Admission | None:
    return as_row(Admission, await db.fetchrow(_ADMIT_SQL, project_id, worker_id))


# --------------------------------------------------------------------------- submit

# A training answer is approved as it is submitted: the lifecycle's approval (its slot, tally
# and payout) runs in the same transaction. A project paying nothing has nothing to pay: its
# zero payout, just written by that approval and not yet visible to any deliverer, is dropped.
_DROP_ZERO_PAYOUT_SQL = """
DELETE FROM outbox
WHERE key = 'pay:' || $1 AND delivered_at IS NULL
  AND (payload ->> 'reward_cents')::bigint = 0 AND (payload ->> 'fee_cents')::bigint = 0
"""


async def drop_zero_payout(db: Writable, *, assignment_id: str) -> None:
    await db.execute(_DROP_ZERO_PAYOUT_SQL, assignment_id)


@dataclass(frozen=True, slots=True)
class Graded:
    """The attempt after one answer: `None` from `count_answer` when the answer is not part of
    the current attempt (decided already, or accepted before it started)."""

    status: str
    attempt: int
    answered: int
    correct: int
    started_at: datetime
    decided_at: datetime | None
    retry_at: datetime | None
    granted_value: int | None


# One answer counted in the worker's current attempt, and the attempt decided once it has
# `min_training_answers` answers: passed at `pass_accuracy` percent or more (exactly:
# correct x 100 >= pass_accuracy x answers), else failed with the type's retry delay (none: no
# retry). The progress row is locked first (FOR UPDATE waits for a concurrent submit of the
# worker and then reads the row it committed), so concurrent submits count each answer once and
# exactly one of them moves the attempt to `passed`: that statement also enqueues the grant
# (outbox, kind 'grant', key per project and worker: a pass happens once). An answer of an
# assignment accepted before the attempt started, or submitted after the attempt was decided,
# is graded for the worker but not counted.
_COUNT_ANSWER_SQL = """
WITH terms AS (
    SELECT p.id, p.requester_id, p.training_qualification_type_id AS type_id,
           p.min_training_answers AS need, p.pass_accuracy, q.retry_delay_seconds
    FROM projects p
    LEFT JOIN qualification_types q ON q.id = p.training_qualification_type_id
    WHERE p.id = $1
), counted AS (
    SELECT t.project_id, t.worker_id, t.answered + 1 AS answered, t.correct + $4 AS correct,
           terms.requester_id, terms.type_id, terms.need, terms.pass_accuracy,
           terms.retry_delay_seconds
    FROM training_progress t CROSS JOIN terms
    WHERE t.project_id = $1 AND t.worker_id = $2 AND t.status = 'in_progress'
      AND t.started_at <= $3
    FOR UPDATE OF t
), decided AS (
    SELECT c.*,
           CASE WHEN c.answered < c.need THEN 'in_progress'
                WHEN c.correct * 100 >= c.pass_accuracy * c.answered THEN 'passed'
                ELSE 'failed' END AS outcome
    FROM counted c
), graded AS (
    UPDATE training_progress t
    SET answered = d.answered, correct = d.correct, status = d.outcome,
        decided_at = CASE WHEN d.outcome <> 'in_progress' THEN now() END,
        retry_at = CASE WHEN d.outcome = 'failed'
                        THEN now() + make_interval(secs => d.retry_delay_seconds) END,
        granted_value = CASE WHEN d.outcome = 'passed' THEN d.correct * 100 / d.answered END,
        updated_at = now()
    FROM decided d
    WHERE t.project_id = d.project_id AND t.worker_id = d.worker_id
    RETURNING t.status, t.attempt, t.answered, t.correct, t.started_at, t.decided_at,
              t.retry_at, t.granted_value, d.requester_id, d.type_id
), granted AS (
    INSERT INTO outbox (kind, key, payload)
    SELECT 'grant', k.key, jsonb_build_object(
        'key', k.key, 'qualification_type_id', g.type_id, 'worker_id', $2::text,
        'requester_id', g.requester_id, 'project_id', $1::text, 'value', g.granted_value)
    FROM graded g
    CROSS JOIN LATERAL (SELECT 'grant:training:' || $1 || ':' || $2 AS key) k
    WHERE g.status = 'passed'
    ON CONFLICT (key) DO NOTHING
)
SELECT status, attempt, answered, correct, started_at, decided_at, retry_at, granted_value
FROM graded
"""


async def count_answer(
    db: Writable, *, project_id: str, worker_id: str, accepted_at: datetime, correct: bool
) -> Graded | None:
    return as_row(
        Graded,
        await db.fetchrow(_COUNT_ANSWER_SQL, project_id, worker_id, accepted_at, int(correct)),
    )


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """A training project as a worker may see it, with the worker's progress (NULLs before
    the first attempt) and the fresh tasks left for them."""

    id: str
    status: str
    kind: str
    requester_id: str
    qualification_type_id: str | None
    min_training_answers: int | None
    pass_accuracy: int | None
    progress_status: str | None
    attempt: int | None
    answered: int | None
    correct: int | None
    started_at: datetime | None
    decided_at: datetime | None
    retry_at: datetime | None
    granted_value: int | None
    fresh_tasks: int
    blocked: bool


_PROGRESS_SQL = """
SELECT p.id, p.status, p.kind, p.requester_id,
       p.training_qualification_type_id AS qualification_type_id, p.min_training_answers,
       p.pass_accuracy, t.status AS progress_status, t.attempt, t.answered, t.correct,
       t.started_at, t.decided_at, t.retry_at, t.granted_value,
       (SELECT count(*) FROM tasks k
        WHERE k.project_id = p.id AND k.status = 'open'
          AND coalesce(k.expires_at, p.tasks_expire_at) > now()
          AND NOT EXISTS (
              SELECT 1 FROM assignments a WHERE a.task_id = k.id AND a.worker_id = $2
          ))::int AS fresh_tasks,
       EXISTS (
           SELECT 1 FROM worker_blocks b WHERE b.worker_id = $2 AND b.requester_id = p.requester_id
       ) AS blocked
FROM projects p
LEFT JOIN training_progress t ON t.project_id = p.id AND t.worker_id = $2
WHERE p.id = $1
"""


async def progress(db: Db, *, project_id: str, worker_id: str) -> ProgressRow | None:
    return as_row(ProgressRow, await db.fetchrow(_PROGRESS_SQL, project_id, worker_id))


@dataclass(frozen=True, slots=True)
class WorkerProgressRow:
    worker_id: str
    status: str
    attempt: int
    answered: int
    correct: int
    started_at: datetime
    decided_at: datetime | None
    retry_at: datetime | None
    granted_value: int | None


async def list_workers(
    db: Db, *, project_id: str, status: str | None, before_worker_id: str | None, limit: int
) -> list[WorkerProgressRow]:
    """The project's workers' attempts, newest worker accounts first (ids are time-sortable: a
    stable order for cursors), along the table's primary key."""
    t = TrainingProgress
    stmt = select(
        t.worker_id,
        t.status,
        t.attempt,
        t.answered,
        t.correct,
        t.started_at,
        t.decided_at,
        t.retry_at,
        t.granted_value,
    ).where(t.project_id == project_id)
    if status is not None:
        stmt = stmt.where(t.status == status)
    stmt = newest_first(stmt, t.worker_id, before_id=before_worker_id, limit=limit)
    return as_rows(WorkerProgressRow, await db.fetch(stmt))
