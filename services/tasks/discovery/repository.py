"""SQL for the worker's view of published work (hand-tuned statements: discovery is read on every
visit, behind `OFFSET 0` fences and with Postgres aggregates; docs/architecture.md).

"Claimable" is the queue's rule: project published, task open with an open slot and not expired.
A task the worker already has an assignment of (whatever became of it) is never offered again.
A task's expiry is its own `expires_at` or, when NULL (uploaded before publish), its project's
`tasks_expire_at`; every query here has the project row at hand (alias `p`) for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.database import Db, Writable, as_row, as_rows

_CLAIMABLE_FOR_WORKER = """
    t.status = 'open' AND t.open_slots > 0 AND coalesce(t.expires_at, p.tasks_expire_at) > now()
    AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $1)
"""

_PROJECT_COLUMNS = """
    p.id, p.requester_id, p.title, p.description, p.instructions, p.keywords, p.task_type,
    p.labels, p.multi_label, p.answer_schema, p.reward_cents, p.assignment_duration_seconds,
    p.estimated_seconds_per_assignment, p.qualification_requirements, p.min_gold_accuracy,
    p.published_at, p.pay_model, p.hourly_rate_cents, p.min_hourly_rate_cents,
    p.reward_by_level, p.level_reward_cents, p.hourly_rate_by_level, p.level_hourly_rate_cents,
    p.kind
"""

# Both sub-selects are fenced with `OFFSET 0`, which Postgres never pulls up into a join: each
# published project then costs one ix_tasks_claim probe that stops at its first claimable task
# (plus one uq_assignments_task_id_worker_id probe per task looked at). Unfenced, the planner
# flattens them into a hash anti-join over every open task of every project as soon as the
# worker has a few hundred assignments (bench: 137 ms -> 0.54 ms per page at 300k open tasks,
# 773 ms of Postgres CPU per listing at 1.4M).
PUBLISHED_WITH_WORK_SQL = f"""
SELECT {_PROJECT_COLUMNS}
FROM projects p
WHERE p.status = 'published' AND ($2::text IS NULL OR p.id < $2)
  AND (p.kind = 'standard' OR NOT EXISTS (
      -- A training project the worker passed, or failed and may not retry yet, has no work for
      -- them (services/tasks/training): one primary-key probe, on training projects only.
      SELECT 1 FROM training_progress tp
      WHERE tp.project_id = p.id AND tp.worker_id = $1
        AND (tp.status = 'passed'
             OR (tp.status = 'failed' AND (tp.retry_at IS NULL OR tp.retry_at > now())))
  ))
  AND EXISTS (
      SELECT 1 FROM tasks t
      WHERE t.project_id = p.id
        AND t.status = 'open' AND t.open_slots > 0
        AND coalesce(t.expires_at, p.tasks_expire_at) > now()
        AND NOT EXISTS (
            SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = $1 OFFSET 0
        )
      OFFSET 0
  )
ORDER BY p.id DESC
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class WorkProjectRow:
    """The columns of `_PROJECT_COLUMNS`."""

    id: str
    requester_id: str
    title: str
    description: str
    instructions: str
    keywords: list[str]
    task_type: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] | None
    reward_cents: int
    assignment_duration_seconds: int
    estimated_seconds_per_assignment: int | None
    qualification_requirements: list[dict[str, Any]] | None
    min_gold_accuracy: int | None
    published_at: datetime | None
    pay_model: str
    hourly_rate_cents: int | None
    min_hourly_rate_cents: int | None
    # Pay tiers (services/tasks/pay_tiers): as set, and resolved per level 0..3.
    reward_by_level: dict[str, int] | None
    level_reward_cents: list[int] | None
    hourly_rate_by_level: dict[str, int] | None
    level_hourly_rate_cents: list[int] | None
    kind: str


WORKER_LEVEL_SQL = "SELECT coalesce((SELECT level FROM worker_levels WHERE worker_id = $1), 0)::int"


async def worker_level(db: Db, worker_id: str) -> int:
    """The worker's platform level (0 without a worker_levels row): what the pay tiers pay."""
    return int(await db.fetchval(WORKER_LEVEL_SQL, worker_id))


async def published_with_work(
    db: Db, *, worker_id: str, before_id: str | None, limit: int
) -> list[WorkProjectRow]:
    """Published projects, newest first, holding at least one task this worker may claim.

    The `ix_projects_published` partial index walks the projects backwards and `ix_tasks_claim`
    (the queue's partial index of open tasks with a slot) answers each EXISTS.
    """
    return as_rows(
        WorkProjectRow, await db.fetch(PUBLISHED_WITH_WORK_SQL, worker_id, before_id, limit)
    )


_PUBLISHED_PROJECT_SQL = (
    f"SELECT {_PROJECT_COLUMNS} FROM projects p WHERE p.id = $1 AND p.status = 'published'"
)


async def published_project(db: Db, project_id: str) -> WorkProjectRow | None:
    return as_row(WorkProjectRow, await db.fetchrow(_PUBLISHED_PROJECT_SQL, project_id))


_AVAILABLE_COUNTS_SQL = f"""
SELECT t.project_id, count(*) AS available
FROM tasks t JOIN projects p ON p.id = t.project_id
WHERE t.project_id = ANY($2::text[]) AND {_CLAIMABLE_FOR_WORKER}
GROUP BY t.project_id
"""


@dataclass(frozen=True, slots=True)
class AvailableRow:
    project_id: str
    available: int


async def available_counts(db: Db, *, worker_id: str, project_ids: Sequence[str]) -> dict[str, int]:
    rows = as_rows(
        AvailableRow, await db.fetch(_AVAILABLE_COUNTS_SQL, worker_id, list(project_ids))
    )
    return {r.project_id: r.available for r in rows}


# The tasks that inherit the project's expiry expire first (publish + lifetime; a task added
# later gets its upload + the same lifetime, which cannot change once published), so any of
# them is a soonest-to-expire sample: the first one found stops the probe. Only when none is
# left do the tasks with their own expiry get sorted (coalesce evaluates its second sub-select
# only then).
_SAMPLE_INPUT_SQL = f"""
SELECT coalesce(
    (SELECT t.input::text FROM tasks t JOIN projects p ON p.id = t.project_id
     WHERE t.project_id = $2 AND t.expires_at IS NULL AND {_CLAIMABLE_FOR_WORKER}
     LIMIT 1),
    (SELECT t.input::text FROM tasks t JOIN projects p ON p.id = t.project_id
     WHERE t.project_id = $2 AND t.expires_at IS NOT NULL AND {_CLAIMABLE_FOR_WORKER}
     ORDER BY t.expires_at LIMIT 1)
)
"""


async def sample_input(db: Db, *, worker_id: str, project_id: str) -> str | None:
    """The raw JSON of one task this worker could take now (the soonest to expire)."""
    return await db.fetchval(_SAMPLE_INPUT_SQL, worker_id, project_id)


_WORKING_TIMES_SQL = """
SELECT project_id, count(*) AS answers,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM submitted_at - accepted_at)) AS median_seconds,
       sum(extract(epoch FROM submitted_at - accepted_at)) AS total_seconds
FROM assignments
WHERE project_id = ANY($1::text[]) AND status IN ('submitted', 'approved')
  AND submitted_at IS NOT NULL
GROUP BY project_id
"""


@dataclass(frozen=True, slots=True)
class WorkingTime:
    answers: int
    median_seconds: float
    total_seconds: float = 0.0  # all the measured work (accept to submit) of these answers


@dataclass(frozen=True, slots=True)
class WorkingTimeRow:
    project_id: str
    answers: int
    median_seconds: float
    total_seconds: Decimal  # numeric


async def working_times(db: Db, project_ids: Sequence[str]) -> dict[str, WorkingTime]:
    rows = as_rows(WorkingTimeRow, await db.fetch(_WORKING_TIMES_SQL, list(project_ids)))
    return {
        r.project_id: WorkingTime(r.answers, float(r.median_seconds), float(r.total_seconds))
        for r in rows
    }


# The scorecard's figures for the requesters in $1 (services/tasks/discovery/scorecard.py), from
# their decided answers (along ix_projects_requester_id_id and ix_assignments_project_id_status_id),
# their pay floor top-ups and their timesheets. An answer's effective hourly pay is its reward +
# top-up over its measured working time (accept to submit, capped at the assignment duration,
# at least 1 s); an hourly project's answers count at the project's rate. Per-answer answers
# enter the median only once the requester's measured per-answer work reaches $2 seconds (a rate
# over a few seconds of work means nothing); $3 answers at least, else NULL. Fair review: every
# rejection given (daily_rejection_counts, overturned ones included), the appeals received, and
# those overturned or left open 7 days (counted as overturned; ix_appeals_requester_id_id).
def _scorecard_figures(*, ids: str, min_seconds: str, min_answers: str) -> str:
    """The figures statement over the requester ids given as SQL (a parameter or a sub-select)."""
    return f"""
WITH decided AS (
    SELECT p.requester_id, a.status, p.pay_model = 'hourly' AS hourly,
           extract(epoch FROM a.reviewed_at - a.submitted_at)::float8 AS review_seconds,
           least(extract(epoch FROM a.submitted_at - a.accepted_at),
                 p.assignment_duration_seconds)::float8 AS measured,
           CASE WHEN p.pay_model = 'hourly' THEN p.hourly_rate_cents::float8
                ELSE (a.reward_cents + coalesce(t.top_up_cents, 0)) * 3600.0
                     / greatest(least(extract(epoch FROM a.submitted_at - a.accepted_at),
                                      p.assignment_duration_seconds), 1)::float8
           END AS rate
    FROM projects p
    JOIN assignments a ON a.project_id = p.id AND a.status IN ('approved', 'rejected')
    LEFT JOIN pay_floor_answers t ON t.assignment_id = a.id
    -- Training answers are approved by the platform at submit: they say nothing of the
    -- requester's reviews or pay (services/tasks/training).
    WHERE p.requester_id = ANY({ids}) AND p.kind = 'standard'
), measured AS (
    SELECT requester_id,
           coalesce(sum(measured) FILTER (WHERE status = 'approved' AND NOT hourly), 0)
               AS per_answer_seconds
    FROM decided GROUP BY requester_id
), sheets AS (
    SELECT p.requester_id,
           count(*) FILTER (WHERE ts.status = 'approved' OR ts.disputed_at IS NOT NULL)
               AS reviewed,
           count(*) FILTER (WHERE ts.disputed_at IS NOT NULL) AS disputed
    FROM projects p JOIN timesheets ts ON ts.project_id = p.id
    WHERE p.requester_id = ANY({ids})
    GROUP BY p.requester_id
), rejections AS (
    SELECT requester_id, sum(rejections) AS given
    FROM daily_rejection_counts WHERE requester_id = ANY({ids})
    GROUP BY requester_id
), appealed AS (
    SELECT requester_id, count(*) AS received,
           count(*) FILTER (WHERE status = 'overturned'
                            OR (status = 'open' AND created_at <= now() - interval '7 days'))
               AS overturned
    FROM appeals WHERE requester_id = ANY({ids})
    GROUP BY requester_id
), figures AS (
    SELECT r.requester_id,
           count(d.status) FILTER (WHERE d.status = 'approved') AS approved,
           count(d.status) FILTER (WHERE d.status = 'rejected') AS rejected,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY d.review_seconds)
               FILTER (WHERE d.review_seconds IS NOT NULL) AS median_review_seconds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY d.rate)
               FILTER (WHERE d.status = 'approved'
                       AND (d.hourly OR m.per_answer_seconds >= {min_seconds}))
               AS median_rate,
           count(d.status)
               FILTER (WHERE d.status = 'approved'
                       AND (d.hourly OR m.per_answer_seconds >= {min_seconds}))
               AS rated_answers,
           coalesce(max(s.reviewed), 0)::int AS timesheets_reviewed,
           coalesce(max(s.disputed), 0)::int AS timesheets_disputed,
           coalesce(max(rj.given), 0)::bigint AS rejections_given,
           coalesce(max(ap.received), 0)::bigint AS appeals_received,
           coalesce(max(ap.overturned), 0)::bigint AS appeals_overturned
    FROM unnest({ids}) AS r(requester_id)
    LEFT JOIN decided d ON d.requester_id = r.requester_id
    LEFT JOIN measured m ON m.requester_id = r.requester_id
    LEFT JOIN sheets s ON s.requester_id = r.requester_id
    LEFT JOIN rejections rj ON rj.requester_id = r.requester_id
    LEFT JOIN appealed ap ON ap.requester_id = r.requester_id
    GROUP BY r.requester_id
)
SELECT requester_id, approved, rejected, median_review_seconds,
       CASE WHEN rated_answers >= {min_answers} THEN floor(median_rate)::bigint END
           AS effective_hourly_cents,
       rated_answers, timesheets_reviewed, timesheets_disputed,
       rejections_given, appeals_received, appeals_overturned
FROM figures
"""


SCORECARD_FIGURES_SQL = _scorecard_figures(ids="$1::text[]", min_seconds="$2", min_answers="$3")

_UPSERT_SCORECARDS = """
INSERT INTO requester_scorecards AS c (
    requester_id, approved, rejected, median_review_seconds, effective_hourly_cents,
    rated_answers, timesheets_reviewed, timesheets_disputed,
    rejections_given, appeals_received, appeals_overturned, refreshed_at
)
SELECT f.*, now() FROM ({figures}) f
ON CONFLICT (requester_id) DO UPDATE SET
    approved = EXCLUDED.approved, rejected = EXCLUDED.rejected,
    median_review_seconds = EXCLUDED.median_review_seconds,
    effective_hourly_cents = EXCLUDED.effective_hourly_cents,
    rated_answers = EXCLUDED.rated_answers,
    timesheets_reviewed = EXCLUDED.timesheets_reviewed,
    timesheets_disputed = EXCLUDED.timesheets_disputed,
    rejections_given = EXCLUDED.rejections_given,
    appeals_received = EXCLUDED.appeals_received,
    appeals_overturned = EXCLUDED.appeals_overturned,
    refreshed_at = EXCLUDED.refreshed_at
"""

# The sweep: requesters with a published project whose scorecard is missing or older than $2
# seconds, oldest first, at most $1, each taken by one replica (a transaction-level advisory lock
# per requester: a replica skips the ones another is refreshing), refreshed in one statement.
REFRESH_SCORECARDS_SQL = """
WITH due AS (
    SELECT r.requester_id FROM (
        SELECT DISTINCT requester_id FROM projects WHERE status = 'published'
    ) r
    LEFT JOIN requester_scorecards s ON s.requester_id = r.requester_id
    WHERE s.requester_id IS NULL OR s.refreshed_at < now() - make_interval(secs => $2)
    ORDER BY s.refreshed_at NULLS FIRST
    LIMIT $1
), mine AS (
    SELECT array_agg(requester_id) AS ids FROM due
    WHERE pg_try_advisory_xact_lock(hashtextextended('requester_scorecard:' || requester_id, 0))
)""" + _UPSERT_SCORECARDS.format(
    figures=_scorecard_figures(
        ids="((SELECT coalesce(ids, '{}'::text[]) FROM mine)::text[])",
        min_seconds="$3",
        min_answers="$4",
    )
)

# The same for named requesters, now (operations, tests).
REFRESH_SCORECARDS_OF_SQL = _UPSERT_SCORECARDS.format(figures=SCORECARD_FIGURES_SQL)


@dataclass(frozen=True, slots=True)
class Scorecard:
    """A requester's scorecard figures (a `requester_scorecards` row without its time)."""

    requester_id: str
    approved: int
    rejected: int
    median_review_seconds: float | None
    effective_hourly_cents: int | None
    rated_answers: int
    timesheets_reviewed: int
    timesheets_disputed: int
    rejections_given: int
    appeals_received: int
    appeals_overturned: int


async def scorecard_figures(
    db: Db, requester_ids: Sequence[str], *, min_seconds: int, min_answers: int
) -> dict[str, Scorecard]:
    """Computed now from the requesters' history (a requester the sweep has not reached)."""
    rows = as_rows(
        Scorecard,
        await db.fetch(SCORECARD_FIGURES_SQL, list(requester_ids), min_seconds, min_answers),
    )
    return {r.requester_id: r for r in rows}


_STORED_SCORECARDS_SQL = """
SELECT requester_id, approved, rejected, median_review_seconds, effective_hourly_cents,
       rated_answers, timesheets_reviewed, timesheets_disputed,
       rejections_given, appeals_received, appeals_overturned
FROM requester_scorecards WHERE requester_id = ANY($1::text[])
"""


async def stored_scorecards(db: Db, requester_ids: Sequence[str]) -> dict[str, Scorecard]:
    """The sweep's precomputed scorecards (one primary-key probe per requester)."""
    rows = as_rows(Scorecard, await db.fetch(_STORED_SCORECARDS_SQL, list(requester_ids)))
    return {r.requester_id: r for r in rows}


async def refresh_scorecards_of(
    db: Writable, requester_ids: Sequence[str], *, min_seconds: int, min_answers: int
) -> None:
    await db.execute(REFRESH_SCORECARDS_OF_SQL, list(requester_ids), min_seconds, min_answers)


async def refresh_scorecards(
    db: Writable, *, limit: int, max_age_seconds: float, min_seconds: int, min_answers: int
) -> int:
    """One batch of the scorecard sweep; the scorecards written."""
    status = await db.execute(
        REFRESH_SCORECARDS_SQL, limit, max_age_seconds, min_seconds, min_answers
    )
    return int(status.split()[-1])


# Kept by the queue side at submit (gold_stats, primary key (project_id, worker_id)).
_GOLD_RECORD_SQL = """
SELECT project_id, answered, correct FROM gold_stats
WHERE worker_id = $1 AND project_id = ANY($2::text[])
"""


@dataclass(frozen=True, slots=True)
class GoldRecord:
    project_id: str
    answered: int
    correct: int


async def gold_records(
    db: Db, *, worker_id: str, project_ids: Sequence[str]
) -> dict[str, GoldRecord]:
    """The worker's gold answers per project and how many were right (queue side's counts)."""
    if not project_ids:
        return {}
    rows = as_rows(GoldRecord, await db.fetch(_GOLD_RECORD_SQL, worker_id, list(project_ids)))
    return {r.project_id: r for r in rows}
