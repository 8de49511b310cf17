"""SQL of the door's HIT, assignment and HIT type operations (services/tasks/mturk/operations).

Reads only, plus the two writes the native service layer has no function for: a HIT's own
expiry at creation (`set_task_lifetime`) and the lock that makes "identical properties, same
HITTypeId" hold under concurrent calls (`lock_hit_type_properties`). Creating projects and
tasks, review and money go through the native service functions.

Hand-written statements: each is one indexed lookup shaped for one operation
(ListAssignmentsForHIT is in the door-vs-native bench, bench/mturk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.database import Db, WriteDb, as_row, as_rows
from shared.jsonutil import dumps

# --------------------------------------------------------------------------- HIT types

# A transaction-level advisory lock on (requester, properties): two CreateHITType calls with
# the same properties run one after the other, so the second finds the project the first
# created instead of creating a twin. Different properties hash apart (a collision only
# serialises two unrelated calls).
LOCK_HIT_TYPE_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def lock_hit_type_properties(db: WriteDb, *, requester_id: str, fingerprint: str) -> None:
    await db.execute(LOCK_HIT_TYPE_SQL, f"mturk-hit-type\n{requester_id}\n{fingerprint}")


# The requester's live project with exactly these properties (ix_projects_requester_id_id,
# then a filter over that requester's projects). The columns a HIT type does not set must be
# the door's defaults too, so a project the owner changed natively (a pay floor, gold rules,
# other answers) is not taken for a plain HIT type.
FIND_HIT_TYPE_SQL = """
SELECT id FROM projects
WHERE requester_id = $1
  AND status = 'published'
  AND pay_model = 'per_assignment'
  AND task_type = $2
  AND title = $3
  AND description = $4
  AND keywords = $5::text[]
  AND reward_cents = $6
  AND assignment_duration_seconds = $7
  AND auto_approve_seconds = $8
  AND assignments_per_task = $9
  AND qualification_requirements = $10::jsonb
  AND min_hourly_rate_cents IS NULL
  AND min_gold_accuracy IS NULL
  AND kind = 'standard'
  AND reward_by_level IS NULL
ORDER BY id
LIMIT 1
"""


async def find_hit_type(
    db: Db,
    *,
    requester_id: str,
    task_type: str,
    title: str,
    description: str,
    keywords: Sequence[str],
    reward_cents: int,
    assignment_duration_seconds: int,
    auto_approve_seconds: int,
    assignments_per_task: int,
    qualification_requirements: list[dict[str, Any]],
) -> str | None:
    return await db.fetchval(
        FIND_HIT_TYPE_SQL,
        requester_id,
        task_type,
        title,
        description,
        list(keywords),
        reward_cents,
        assignment_duration_seconds,
        auto_approve_seconds,
        assignments_per_task,
        dumps(qualification_requirements).decode(),
    )


@dataclass(frozen=True, slots=True)
class HitTypeRow:
    id: str
    status: str
    task_type: str
    pay_model: str


HIT_TYPE_SQL = """
SELECT id, status, task_type, pay_model FROM projects WHERE id = $1 AND requester_id = $2
"""


async def get_hit_type(db: Db, *, requester_id: str, project_id: str) -> HitTypeRow | None:
    return as_row(HitTypeRow, await db.fetchrow(HIT_TYPE_SQL, project_id, requester_id))


# --------------------------------------------------------------------------- HITs

SET_TASK_LIFETIME_SQL = """
UPDATE tasks SET expires_at = now() + make_interval(secs => $2::double precision)
WHERE id = $1
RETURNING expires_at
"""


async def set_task_lifetime(db: WriteDb, *, task_id: str, lifetime_seconds: int) -> datetime:
    """A HIT's own expiry: the creating transaction's now() + LifetimeInSeconds (the upload
    gave it the project's lifetime; the lifetime sweep reads `tasks.expires_at`)."""
    return await db.fetchval(SET_TASK_LIFETIME_SQL, task_id, lifetime_seconds)


@dataclass(frozen=True, slots=True)
class HitRow:
    """A task with what its HIT shows: the project's properties and the assignments' counts."""

    id: str
    project_id: str
    input: dict[str, Any]
    external_id: str | None
    task_status: str
    max_assignments: int
    open_slots: int
    created_at: datetime
    expires_at: datetime | None
    disposed: bool
    project_status: str
    title: str
    description: str
    keywords: list[str]
    reward_cents: int
    assignment_duration_seconds: int
    auto_approve_seconds: int
    qualification_requirements: list[dict[str, Any]]
    accepted: int
    submitted: int
    approved: int
    rejected: int


# The counts per task come from its assignments through uq_assignments_task_id_worker_id (a
# task has at most its max_assignments live or approved ones, plus the returned, expired and
# rejected ones it went through).
_HIT_SELECT = """
SELECT t.id, t.project_id, t.input, t.external_id, t.status AS task_status,
       t.max_assignments, t.open_slots, t.created_at,
       coalesce(t.expires_at, p.tasks_expire_at) AS expires_at,
       t.disposed_at IS NOT NULL AS disposed,
       p.status AS project_status, p.title, p.description, p.keywords, p.reward_cents,
       p.assignment_duration_seconds, p.auto_approve_seconds, p.qualification_requirements,
       c.accepted, c.submitted, c.approved, c.rejected
FROM tasks t
JOIN projects p ON p.id = t.project_id
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE a.status = 'accepted')::int AS accepted,
           count(*) FILTER (WHERE a.status = 'submitted')::int AS submitted,
           count(*) FILTER (WHERE a.status = 'approved')::int AS approved,
           count(*) FILTER (WHERE a.status = 'rejected')::int AS rejected
    FROM assignments a WHERE a.task_id = t.id
) c
"""

GET_HIT_SQL = _HIT_SELECT + "WHERE t.id = $1 AND t.requester_id = $2"

# Newest first, keyset on the task id. Disposed HITs are gone from the list (as on MTurk).
# The page's ids are chosen first (no index leads with tasks.requester_id: the planner walks
# the primary key backwards or sorts the requester's rows), and only the page's rows get their
# project and their assignments counted.
LIST_HITS_SQL = f"""
WITH page AS (
    SELECT id FROM tasks
    WHERE requester_id = $1 AND disposed_at IS NULL AND ($2::text IS NULL OR id < $2)
    ORDER BY id DESC
    LIMIT $3
)
{_HIT_SELECT}
WHERE t.id IN (SELECT id FROM page)
ORDER BY t.id DESC
"""


async def get_hit(db: Db, *, requester_id: str, task_id: str) -> HitRow | None:
    return as_row(HitRow, await db.fetchrow(GET_HIT_SQL, task_id, requester_id))


async def list_hits(
    db: Db, *, requester_id: str, before_id: str | None, limit: int
) -> list[HitRow]:
    return as_rows(HitRow, await db.fetch(LIST_HITS_SQL, requester_id, before_id, limit))


# --------------------------------------------------------------------------- assignments


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """An assignment as the door shows it, with its task's input (the question its answer
    is rendered against)."""

    id: str
    task_id: str
    worker_id: str
    status: str
    answer: Any
    feedback: str | None
    accepted_at: datetime
    deadline: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    auto_approve_at: datetime | None


_ASSIGNMENT_SELECT = """
SELECT a.id, a.task_id, a.worker_id, a.status, a.answer, a.feedback, a.accepted_at,
       a.deadline, a.submitted_at, a.reviewed_at, a.auto_approve_at
FROM assignments a
"""

GET_ASSIGNMENT_SQL = _ASSIGNMENT_SELECT + "WHERE a.id = $1 AND a.requester_id = $2"

# Oldest first (the order answers came in), keyset on the id, through
# uq_assignments_task_id_worker_id: a task's assignments are few.
LIST_ASSIGNMENTS_SQL = (
    _ASSIGNMENT_SELECT
    + """WHERE a.task_id = $1 AND a.requester_id = $2 AND a.status = ANY($3::text[])
  AND ($4::text IS NULL OR a.id > $4)
ORDER BY a.id
LIMIT $5"""
)


async def get_assignment(db: Db, *, requester_id: str, assignment_id: str) -> AssignmentRow | None:
    return as_row(AssignmentRow, await db.fetchrow(GET_ASSIGNMENT_SQL, assignment_id, requester_id))


async def list_assignments(
    db: Db,
    *,
    requester_id: str,
    task_id: str,
    statuses: Sequence[str],
    after_id: str | None,
    limit: int,
) -> list[AssignmentRow]:
    return as_rows(
        AssignmentRow,
        await db.fetch(
            LIST_ASSIGNMENTS_SQL, task_id, requester_id, list(statuses), after_id, limit
        ),
    )


TASK_INPUT_SQL = "SELECT input FROM tasks WHERE id = $1 AND requester_id = $2"


async def task_input(db: Db, *, requester_id: str, task_id: str) -> dict[str, Any] | None:
    """The task's input (None: not the requester's task)."""
    return await db.fetchval(TASK_INPUT_SQL, task_id, requester_id)
