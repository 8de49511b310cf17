"""SQL for the results export: one row per task with its answers, read through a cursor (a
hand-tuned statement: JSON aggregated in Postgres, streamed; docs/architecture.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.database import Db, SnapshotDb, WriteDb, as_row, as_rows

# Inputs stay JSON text (they go out unchanged); answers come as one JSON array per task.
RESULTS_SQL = """
SELECT t.id, t.external_id, t.input::text AS input,
       coalesce((
           SELECT json_agg(json_build_object(
                      'assignment_id', a.id, 'worker_id', a.worker_id,
                      'answer', a.answer, 'status', a.status) ORDER BY a.id)
           FROM assignments a
           WHERE a.task_id = t.id AND a.status IN ('submitted', 'approved', 'rejected')
       ), '[]')::text AS answers
FROM tasks t
WHERE t.project_id = $1
ORDER BY t.id
"""


@dataclass(frozen=True, slots=True)
class ResultRow:
    id: str
    external_id: str | None
    input: str  # JSON text
    answers: str  # JSON text: [{assignment_id, worker_id, answer, status}, ...]


async def task_results(
    db: SnapshotDb, *, project_id: str, prefetch: int
) -> AsyncIterator[ResultRow]:
    """Every task of the project in upload order, `prefetch` rows per round trip.

    A server-side cursor, so memory stays flat for 100,000 tasks; it must run inside a
    transaction: a SnapshotDb's (read-only, repeatable read: one consistent snapshot).
    """
    async for record in db.cursor(RESULTS_SQL, project_id, prefetch=prefetch):
        yield ResultRow(**record)


# --- aggregation runs (crowd-kit methods; services/tasks/results/jobs.py) -----------------

# The export with a finished run's aggregates: the same records as RESULTS_SQL plus the run's
# answer, confidence and agreement per task and each answer's worker skill (primary-key probes).
RESULTS_WITH_RUN_SQL = """
SELECT t.id, t.external_id, t.input::text AS input,
       coalesce((
           SELECT json_agg(json_build_object(
                      'assignment_id', a.id, 'worker_id', a.worker_id,
                      'answer', a.answer, 'status', a.status,
                      'worker_skill', s.skill) ORDER BY a.id)
           FROM assignments a
           LEFT JOIN aggregation_worker_skills s ON s.run_id = $2 AND s.worker_id = a.worker_id
           WHERE a.task_id = t.id AND a.status IN ('submitted', 'approved', 'rejected')
       ), '[]')::text AS answers,
       r.answer::text AS aggregate_answer, r.confidence, r.agreement
FROM tasks t
LEFT JOIN aggregation_task_results r ON r.run_id = $2 AND r.task_id = t.id
WHERE t.project_id = $1
ORDER BY t.id
"""


@dataclass(frozen=True, slots=True)
class AggregatedResultRow:
    id: str
    external_id: str | None
    input: str  # JSON text
    answers: str  # JSON text: [{assignment_id, worker_id, answer, status, worker_skill}, ...]
    aggregate_answer: str | None  # JSON text; None for a task without votes
    confidence: float | None
    agreement: float | None


async def task_results_with_run(
    db: WriteDb, *, project_id: str, run_id: str, prefetch: int
) -> AsyncIterator[AggregatedResultRow]:
    """`task_results` with a run's aggregates (same cursor, same snapshot rules)."""
    async for record in db.cursor(RESULTS_WITH_RUN_SQL, project_id, run_id, prefetch=prefetch):
        yield AggregatedResultRow(**record)


# The watermark: how many of the project's answers are submitted, approved and rejected. An
# answer only ever moves submitted -> approved | rejected, rejected -> approved (override), so
# any change to the voting answers changes these three counts (no sequence of those moves
# leaves all three as they were). Counted on ix_assignments_project_id_status_id.
WATERMARK_SQL = """
SELECT count(*) FILTER (WHERE status = 'submitted') AS submitted,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM assignments
WHERE project_id = $1 AND status IN ('submitted', 'approved', 'rejected')
"""


async def answers_watermark(db: Db, *, project_id: str) -> str:
    row = await db.fetchrow(WATERMARK_SQL, project_id)
    assert row is not None
    return f"s{row['submitted']}.a{row['approved']}.r{row['rejected']}"


# What the loader COPYs per answer, by task type: the label, the label set (JSON), the text, or
# the boxes (the whole answer as JSON). crowd.py reads the same shapes.
ANSWER_EXPRESSIONS: dict[str, str] = {
    "label": "a.answer->>'label'",
    "labels": "(a.answer->'labels')::text",
    "text": "a.answer->>'text'",
    "json": "a.answer::text",
}
# Voting answers (approved, submitted) in the export's order: tasks by id, then assignments.
_ANSWERS_COPY_SQL = """
SELECT a.task_id, a.worker_id, {expression}
FROM assignments a
WHERE a.project_id = $1 AND a.status IN ('submitted', 'approved')
  AND {expression} IS NOT NULL
ORDER BY a.task_id, a.id
"""
VOTING_COUNT_SQL = """
SELECT count(*) FROM assignments
WHERE project_id = $1 AND status IN ('submitted', 'approved')
"""


def answer_expression(*, task_type: str, multi_label: bool) -> str:
    if task_type in ("classification", "sentiment"):
        return ANSWER_EXPRESSIONS["labels" if multi_label else "label"]
    if task_type == "transcription":
        return ANSWER_EXPRESSIONS["text"]
    return ANSWER_EXPRESSIONS["json"]


async def voting_answer_count(db: Db, *, project_id: str) -> int:
    return int(await db.fetchval(VOTING_COUNT_SQL, project_id))


async def copy_voting_answers(
    db: WriteDb,
    *,
    project_id: str,
    task_type: str,
    multi_label: bool,
    output: Callable[[bytes], Awaitable[None]],
) -> None:
    """COPY the voting answers out as CSV (task_id, worker_id, answer), chunk by chunk to
    `output`: no row objects in the service process, whatever the project's size."""
    expression = answer_expression(task_type=task_type, multi_label=multi_label)
    await db.copy_from_query(
        _ANSWERS_COPY_SQL.format(expression=expression), project_id, output=output, format="csv"
    )


async def gold_answers(db: Db, *, project_id: str) -> dict[str, Any]:
    rows = await db.fetch(
        "SELECT id, gold_answer FROM tasks WHERE project_id = $1 AND gold_answer IS NOT NULL",
        project_id,
    )
    return {row["id"]: row["gold_answer"] for row in rows}


async def gold_tallies(db: Db, *, project_id: str) -> dict[str, tuple[int, int]]:
    rows = await db.fetch(
        "SELECT worker_id, answered, correct FROM gold_stats WHERE project_id = $1 "
        "AND answered > 0",
        project_id,
    )
    return {row["worker_id"]: (row["answered"], row["correct"]) for row in rows}


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    project_id: str
    method: str
    watermark: str
    status: str
    stage: str
    progress: float
    error: str | None
    task_count: int | None
    answer_count: int | None
    worker_count: int | None
    compute_seconds: float | None
    lease_expired: bool
    created_at: datetime
    finished_at: datetime | None


_RUN_COLUMNS = """id, project_id, method, watermark, status, stage, progress, error, task_count,
    answer_count, worker_count, compute_seconds,
    coalesce(lease_until < now(), false) AS lease_expired, created_at, finished_at"""


async def find_run(db: Db, *, project_id: str, method: str, watermark: str) -> RunRow | None:
    return as_row(
        RunRow,
        await db.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM aggregation_runs "
            "WHERE project_id = $1 AND method = $2 AND watermark = $3",
            project_id,
            method,
            watermark,
        ),
    )


async def get_run(db: Db, *, project_id: str, run_id: str) -> RunRow | None:
    return as_row(
        RunRow,
        await db.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM aggregation_runs WHERE id = $1 AND project_id = $2",
            run_id,
            project_id,
        ),
    )


async def insert_run(
    db: Db, *, run_id: str, project_id: str, method: str, watermark: str, lease_seconds: float
) -> RunRow | None:
    """The new run, or None when another request created it first (the unique key)."""
    return as_row(
        RunRow,
        await db.fetchrow(
            f"""
            INSERT INTO aggregation_runs (id, project_id, method, watermark, lease_until)
            VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
            ON CONFLICT (project_id, method, watermark) DO NOTHING
            RETURNING {_RUN_COLUMNS}
            """,
            run_id,
            project_id,
            method,
            watermark,
            lease_seconds,
        ),
    )


async def restart_run(
    db: Db, *, run_id: str, lease_seconds: float, retry_seconds: float
) -> RunRow | None:
    """Take over a run that failed over `retry_seconds` ago or whose process stopped
    heartbeating; None when another request took it first, it is alive, or its failure is too
    recent to retry."""
    return as_row(
        RunRow,
        await db.fetchrow(
            f"""
            UPDATE aggregation_runs
            SET status = 'running', stage = 'queued', progress = 0, error = NULL,
                lease_until = now() + make_interval(secs => $2), finished_at = NULL
            WHERE id = $1
              AND ((status = 'failed' AND finished_at <= now() - make_interval(secs => $3))
                   OR (status = 'running' AND lease_until < now()))
            RETURNING {_RUN_COLUMNS}
            """,
            run_id,
            lease_seconds,
            retry_seconds,
        ),
    )


async def heartbeat(
    db: Db, *, run_id: str, stage: str, progress: float, lease_seconds: float
) -> None:
    await db.execute(
        """
        UPDATE aggregation_runs
        SET stage = $2, progress = $3, lease_until = now() + make_interval(secs => $4)
        WHERE id = $1 AND status = 'running'
        """,
        run_id,
        stage,
        progress,
        lease_seconds,
    )


async def fail_run(db: Db, *, run_id: str, error: str) -> None:
    await db.execute(
        """
        UPDATE aggregation_runs
        SET status = 'failed', stage = 'failed', error = $2, lease_until = NULL,
            finished_at = now()
        WHERE id = $1 AND status = 'running'
        """,
        run_id,
        error,
    )


async def store_run(
    db: WriteDb,
    *,
    run_id: str,
    tasks: Iterable[Sequence[Any]],
    skills: Iterable[Sequence[Any]],
    task_count: int,
    answer_count: int,
    worker_count: int,
    compute_seconds: float,
) -> None:
    """Write a run's results and mark it done, in the caller's transaction; older runs of the
    same project and method (failed, or done over 10 minutes ago) go, with their rows (ON
    DELETE CASCADE)."""
    await db.execute("DELETE FROM aggregation_task_results WHERE run_id = $1", run_id)
    await db.execute("DELETE FROM aggregation_worker_skills WHERE run_id = $1", run_id)
    await db.copy_records_to_table(
        "aggregation_task_results",
        records=tasks,
        columns=("run_id", "task_id", "answer", "confidence", "agreement"),
    )
    await db.copy_records_to_table(
        "aggregation_worker_skills",
        records=skills,
        columns=("run_id", "worker_id", "skill", "answers"),
    )
    run = await db.fetchrow(
        """
        UPDATE aggregation_runs
        SET status = 'done', stage = 'done', progress = 1, lease_until = NULL,
            finished_at = now(), task_count = $2, answer_count = $3, worker_count = $4,
            compute_seconds = $5
        WHERE id = $1
        RETURNING project_id, method
        """,
        run_id,
        task_count,
        answer_count,
        worker_count,
        compute_seconds,
    )
    assert run is not None
    # Older runs go once they have been superseded for a while: an export that found one a
    # moment ago reads it in a snapshot taken right after, so it never loses its rows.
    await db.execute(
        """
        DELETE FROM aggregation_runs
        WHERE project_id = $1 AND method = $2 AND id <> $3
          AND (status = 'failed'
               OR (status = 'done' AND finished_at < now() - interval '10 minutes'))
        """,
        run["project_id"],
        run["method"],
        run_id,
    )


async def task_aggregates(db: Db, *, run_id: str) -> dict[str, tuple[Any, float | None, float]]:
    """A finished run's aggregates: task_id -> (answer, confidence, agreement)."""
    rows = await db.fetch(
        "SELECT task_id, answer, confidence, agreement FROM aggregation_task_results "
        "WHERE run_id = $1",
        run_id,
    )
    return {r["task_id"]: (r["answer"], r["confidence"], r["agreement"]) for r in rows}


@dataclass(frozen=True, slots=True)
class WorkerSkill:
    worker_id: str
    skill: float | None
    method: str
    run_id: str
    finished_at: datetime


# The newest finished run of the project (of one method, or of any), per worker on a page.
_SKILLS_SQL = """
WITH run AS (
    SELECT id, method, finished_at FROM aggregation_runs
    WHERE project_id = $1 AND status = 'done' AND ($2::text IS NULL OR method = $2)
    ORDER BY finished_at DESC, id DESC LIMIT 1
)
SELECT s.worker_id, s.skill, run.method, run.id AS run_id, run.finished_at
FROM run JOIN aggregation_worker_skills s ON s.run_id = run.id
WHERE s.worker_id = ANY($3::text[])
"""


async def worker_skills(
    db: Db, *, project_id: str, method: str | None, worker_ids: Sequence[str]
) -> dict[str, WorkerSkill]:
    rows = as_rows(WorkerSkill, await db.fetch(_SKILLS_SQL, project_id, method, list(worker_ids)))
    return {row.worker_id: row for row in rows}
