"""SQL for the work queue: claiming a slot, submitting, returning, expiring, listing.

Raw asyncpg on the request's connection (shared.db.driver_connection): accept and submit are the
hot paths, a few indexed statements each.
"""

from __future__ import annotations

import asyncpg

from shared.eligibility import worker_facts_sql

# The public shape of an assignment, for RETURNING and SELECT alike (table alias `a`).
ASSIGNMENT_COLUMNS = """
    a.id, a.task_id, a.project_id, a.worker_id, a.status, a.answer, a.feedback,
    a.reward_cents, a.accepted_at, a.deadline, a.submitted_at, a.reviewed_at, a.auto_approve_at
"""

# What accept decides on: the project, the worker's gold tally in it (only for a project with a
# minimum gold accuracy, the one rule that reads it), whether its requester blocked the worker,
# and, only for a project with qualification requirements, the worker's facts
# for them (shared.eligibility, as a LATERAL sub-select: the qualification types come from the
# project's own requirements). A project without requirements needs none of the facts but the
# block, so it skips them: their stats half sums the worker's not yet compacted stats deltas,
# which a compaction backlog (the workers service down or behind) makes milliseconds long
# (~4 ms at 13,000 deltas, EXPLAIN ANALYZE) on the hottest path. No requirements: the column is
# SQL NULL, JSON null or [] (every guard also guards accept, so any requirement at all is
# evaluated). The `OFFSET 0`s keep each sub-select a unit the planner does not inline: the
# block check runs once though two columns use it, and the facts' gate is a one-time filter
# above them, so for a project without requirements they are never executed.
_REQUIRED_TYPES = """ARRAY(
    SELECT r.item ->> 'qualification_type_id'
    FROM jsonb_array_elements(coalesce(p.qualification_requirements, '[]')) AS r(item)
)"""
_NO_REQUIREMENTS = "coalesce(p.qualification_requirements, '[]') IN ('[]'::jsonb, 'null'::jsonb)"
_FACTS_IF_REQUIRED = f"""(
    SELECT * FROM ({
    worker_facts_sql(worker="$2", requester_ids="ARRAY[p.requester_id]", type_ids=_REQUIRED_TYPES)
}) AS f
    WHERE NOT ({_NO_REQUIREMENTS})
    OFFSET 0
)"""
_PROJECT_FOR_ACCEPT = f"""
    SELECT p.id, p.requester_id, p.status, p.reward_cents, p.fee_cents,
           p.assignment_duration_seconds, p.qualification_requirements, p.min_gold_accuracy,
           p.task_type, p.labels, p.multi_label, p.answer_schema,
           p.tasks_expire_at, g.answered AS gold_answered, g.correct AS gold_correct,
           block.blocked,
           p.status = 'published' AND {_NO_REQUIREMENTS}
               AND p.min_gold_accuracy IS NULL AND NOT block.blocked AS sql_rules_passed,
           facts.*
    FROM projects p
    LEFT JOIN LATERAL (
        SELECT g.answered, g.correct FROM gold_stats g
        WHERE p.min_gold_accuracy IS NOT NULL AND g.project_id = p.id AND g.worker_id = $2
        OFFSET 0
    ) AS g ON true
    CROSS JOIN LATERAL (
        SELECT EXISTS (
            SELECT 1 FROM worker_blocks b WHERE b.worker_id = $2 AND b.requester_id = p.requester_id
        ) AS blocked
        OFFSET 0
    ) AS block
    LEFT JOIN LATERAL {_FACTS_IF_REQUIRED} AS facts ON true
    WHERE p.id = $1"""


# Claim one slot of one task and create the assignment, in one statement.
# - `ix_tasks_claim (project_id, claim_rank) WHERE status = 'open' AND open_slots > 0` serves
#   the scan, from a random rank: workers spread over the project's tasks instead of queueing
#   on one head row, and dead index entries left by earlier claims are spread thin.
# - Tasks this worker already had are skipped with one probe of uq_assignments_task_id_worker_id
#   per candidate. `OFFSET 0` keeps the planner from turning it into an anti-join that reads
#   all of the worker's assignments (every project, ever) on each claim, and `|| ''` keeps it
#   from probing ix_assignments_worker_id_id instead, which reads the same: both indexes look
#   like one-row probes to a plan made on small or stale statistics, and the hot pool's generic
#   plans are made once per connection (the bench caught one reading 420 of a worker's
#   assignments per claim, ~0.3 ms, after a few minutes of load).
# - The project must still be published in this statement's snapshot (pause/close since):
#   `may_claim`, a one-time filter above the scan (an EXISTS on the project alone; in the
#   fused statement, the rules it decided on the project row of the same snapshot).
# - Expiry: a task's own `expires_at`, or, when NULL (uploaded before publish), the project's
#   `tasks_expire_at`, read by an uncorrelated sub-select that Postgres runs once per
#   statement (an InitPlan), and only if a NULL is met: no per-row work beyond today's check.
# - The decrement runs on the locked row, re-checked after any wait (open_slots > 0), and the
#   open_slots CHECK (>= 0) backs it: a task never has more live-or-approved assignments than
#   max_assignments.
# - One worker never gets two assignments of a task: the unique (task_id, worker_id). Two
#   concurrent accepts of one worker may pick the same task (neither snapshot shows the other's
#   assignment); the second's INSERT then meets the first's row and does nothing, and nothing
#   is decremented. The row comes back with `picked_task_id` set and no assignment: the caller
#   claims again, in a new snapshot. (This replaces a per-(project, worker) advisory lock,
#   which needed a transaction around two statements.)
# - It is one statement, hence atomic on its own: the request runs it without BEGIN/COMMIT.
#
# The CTEs are a template with two instances, so the claim's rules exist once: the claim alone
# (CLAIM_SKIP_LOCKED_SQL / CLAIM_WAITING_SQL, the project's terms as parameters $5-$8) and the
# claim fused behind accept's read (ACCEPT_FUSED_SQL, the terms from its `project` CTE).
# Parameters both share: $1 project, $2 worker, $3 first rank, $4 new assignment id.
_CLAIM_CTES = """
picked AS (
    SELECT t.id FROM tasks t
    WHERE t.project_id = $1 AND t.claim_rank >= $3
      AND t.status = 'open' AND t.open_slots > 0
      AND coalesce(t.expires_at, {tasks_expire_at}) > now()
      AND NOT EXISTS (
          SELECT 1 FROM assignments x WHERE x.task_id = t.id AND x.worker_id || '' = $2 OFFSET 0
      )
      AND {may_claim}
    ORDER BY t.claim_rank
    LIMIT 1
    FOR UPDATE OF t {wait}
), created AS (
    INSERT INTO assignments AS a (id, task_id, project_id, requester_id, worker_id, status,
                                  reward_cents, fee_cents, accepted_at, deadline)
    SELECT $4, picked.id, $1, {requester_id}, $2, 'accepted', {reward_cents}, {fee_cents}, now(),
           now() + make_interval(secs => {duration_seconds})
    FROM picked {terms_from}
    ON CONFLICT ON CONSTRAINT uq_assignments_task_id_worker_id DO NOTHING
    RETURNING a.id, a.task_id, a.accepted_at, a.deadline
), claimed AS (
    UPDATE tasks t SET open_slots = t.open_slots - 1
    FROM created WHERE t.id = created.task_id
    RETURNING t.id, t.input, t.gold_answer
)"""
_CLAIM_JOINS = """
LEFT JOIN created ON created.task_id = picked.id
LEFT JOIN claimed ON claimed.id = picked.id"""
_CLAIM = (
    "WITH "
    + _CLAIM_CTES
    + """
SELECT picked.id AS picked_task_id, created.id, created.task_id, created.accepted_at,
       created.deadline, claimed.input, claimed.gold_answer
FROM picked"""
    + _CLAIM_JOINS
    + "\n"
)
_CLAIM_ALONE_TERMS = {
    "tasks_expire_at": "(SELECT p.tasks_expire_at FROM projects p WHERE p.id = $1)",
    "may_claim": "EXISTS (SELECT 1 FROM projects p WHERE p.id = $1 AND p.status = 'published')",
    "requester_id": "$5",
    "reward_cents": "$6",
    "fee_cents": "$7",
    "duration_seconds": "$8",
    "terms_from": "",
}
CLAIM_SKIP_LOCKED_SQL = _CLAIM.format(wait="SKIP LOCKED", **_CLAIM_ALONE_TERMS)
CLAIM_WAITING_SQL = _CLAIM.format(wait="", **_CLAIM_ALONE_TERMS)


async def claim_slot(
    conn: asyncpg.Connection,
    *,
    project_id: str,
    worker_id: str,
    requester_id: str,
    assignment_id: str,
    from_rank: int,
    reward_cents: int,
    fee_cents: int,
    duration_seconds: int,
    skip_locked: bool,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        CLAIM_SKIP_LOCKED_SQL if skip_locked else CLAIM_WAITING_SQL,
        project_id,
        worker_id,
        from_rank,
        assignment_id,
        requester_id,
        reward_cents,
        fee_cents,
        duration_seconds,
    )


# Accept in one round trip when SQL can decide the project's rules: the read above and the
# first claim pass (from rank `$3`, SKIP LOCKED) in one statement, hence one snapshot. The claim
# runs only if `sql_rules_passed`: the project is published, has no qualification requirements,
# no minimum gold accuracy, and its requester has not blocked the worker. Otherwise the claim's
# gate is a one-time filter that is false: the task scan never starts, nothing is written, and
# the caller decides on the columns read, as before. The assignment's terms (requester, reward,
# fee, duration) and the inherited expiry come from the `project` row, so the claim cannot use
# terms other than the ones the rules were decided on.
# Columns: the read's (facts NULL without requirements), then the claim's: `picked_task_id`,
# `assignment_id` (the claim's `id`, renamed: `id` is the project's here), `task_id`,
# `accepted_at`, `deadline`, `input`; NULL when no claim ran or no task was free, and only
# `picked_task_id` set when the worker's own concurrent accept took the picked task.
ACCEPT_FUSED_SQL = (
    f"WITH project AS MATERIALIZED ({_PROJECT_FOR_ACCEPT}\n), "
    + _CLAIM_CTES.format(
        wait="SKIP LOCKED",
        tasks_expire_at="(SELECT project.tasks_expire_at FROM project)",
        may_claim="(SELECT project.sql_rules_passed FROM project)",
        requester_id="project.requester_id",
        reward_cents="project.reward_cents",
        fee_cents="project.fee_cents",
        duration_seconds="project.assignment_duration_seconds",
        terms_from="CROSS JOIN project",
    )
    + """
SELECT project.*, picked.id AS picked_task_id, created.id AS assignment_id, created.task_id,
       created.accepted_at, created.deadline, claimed.input, claimed.gold_answer
FROM project
LEFT JOIN picked ON true"""
    + _CLAIM_JOINS
    + "\n"
)


async def read_and_claim_first(
    conn: asyncpg.Connection,
    *,
    project_id: str,
    worker_id: str,
    assignment_id: str,
    from_rank: int,
) -> asyncpg.Record | None:
    """What accept decides on plus, when SQL could decide the rules and they passed
    (`sql_rules_passed`), the first claim pass's columns (ACCEPT_FUSED_SQL). None for an
    unknown project."""
    return await conn.fetchrow(ACCEPT_FUSED_SQL, project_id, worker_id, from_rank, assignment_id)


# What submit checks the answer against: the holder's assignment, its project's answer schema
# and the task's gold answer. Read without a lock: SUBMIT_SQL decides on the row itself.
_FOR_SUBMIT = f"""
SELECT {ASSIGNMENT_COLUMNS}, a.deadline <= now() AS overdue,
       p.task_type, p.labels, p.multi_label, p.answer_schema,
       t.gold_answer
FROM assignments a
JOIN projects p ON p.id = a.project_id
JOIN tasks t ON t.id = a.task_id
WHERE a.id = $1 AND a.worker_id = $2
"""


async def get_for_submit(
    conn: asyncpg.Connection, *, assignment_id: str, worker_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(_FOR_SUBMIT, assignment_id, worker_id)


# Submit, once the answer is known to fit, in one statement (atomic on its own, so the request
# needs no BEGIN/COMMIT): the holder's accepted assignment, if its deadline has not passed,
# becomes `submitted`, and the worker's tally in the project (gold_stats: submissions, and gold
# answers given and right, for the owner's per-worker page and the gold-accuracy gate) moves by
# the deltas given. Postgres re-checks the WHERE on a row another transaction changed since the
# read (a timer expiring it, a return, a concurrent submit), so it is decided exactly once.
_SUBMIT = f"""
WITH updated AS (
    UPDATE assignments a
    SET status = 'submitted', answer = $3::jsonb, submitted_at = now(),
        auto_approve_at = now() + make_interval(secs => p.auto_approve_seconds)
    FROM projects p{{also_from}}
    WHERE a.id = $1 AND a.worker_id = $2 AND a.status = 'accepted' AND a.deadline > now()
      AND p.id = a.project_id{{also_where}}
    RETURNING {ASSIGNMENT_COLUMNS}
), counted AS (
    INSERT INTO gold_stats AS g (project_id, worker_id, answered, correct, submitted)
    SELECT project_id, worker_id, $4, $5, 1 FROM updated
    ON CONFLICT (project_id, worker_id) DO UPDATE
    SET submitted = g.submitted + 1, answered = g.answered + EXCLUDED.answered,
        correct = g.correct + EXCLUDED.correct, updated_at = now()
)
SELECT * FROM updated
"""
SUBMIT_SQL = _SUBMIT.format(also_from="", also_where="")

# The same write for an answer checked against what accept read (services/tasks/assignments/
# accepted.py) instead of a fresh read: it also requires that the project's answer format and
# the task's gold answer are still the ones the answer was validated and graded on (jsonb
# equality, NULL matching NULL). If either changed since, nothing is written and submit takes
# the read path.
SUBMIT_IF_UNCHANGED_SQL = _SUBMIT.format(
    also_from=", tasks t",
    also_where="""
      AND t.id = a.task_id AND p.task_type = $6 AND p.labels IS NOT DISTINCT FROM $7::jsonb
      AND p.multi_label = $8 AND p.answer_schema IS NOT DISTINCT FROM $9::jsonb
      AND t.gold_answer IS NOT DISTINCT FROM $10::jsonb""",
)


async def submit(
    conn: asyncpg.Connection,
    *,
    assignment_id: str,
    worker_id: str,
    answer_json: str,
    gold_answered: int,
    gold_correct: int,
) -> asyncpg.Record | None:
    """None when the worker no longer holds an accepted assignment of that id within its
    deadline (it changed since get_for_submit)."""
    return await conn.fetchrow(
        SUBMIT_SQL, assignment_id, worker_id, answer_json, gold_answered, gold_correct
    )


async def submit_if_unchanged(
    conn: asyncpg.Connection,
    *,
    assignment_id: str,
    worker_id: str,
    answer_json: str,
    gold_answered: int,
    gold_correct: int,
    task_type: str,
    labels_json: str | None,
    multi_label: bool,
    answer_schema_json: str | None,
    gold_answer_json: str | None,
) -> asyncpg.Record | None:
    """None when the assignment is not the worker's open one any more, or when the format or
    the gold answer given is not the current one."""
    return await conn.fetchrow(
        SUBMIT_IF_UNCHANGED_SQL,
        assignment_id,
        worker_id,
        answer_json,
        gold_answered,
        gold_correct,
        task_type,
        labels_json,
        multi_label,
        answer_schema_json,
        gold_answer_json,
    )


_RETURN = f"""
UPDATE assignments a SET status = 'returned', ended_at = now()
WHERE a.id = $1 AND a.worker_id = $2 AND a.status = 'accepted'
RETURNING {ASSIGNMENT_COLUMNS}
"""


async def return_assignment(
    conn: asyncpg.Connection, *, assignment_id: str, worker_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(_RETURN, assignment_id, worker_id)


async def get_status_for_worker(
    conn: asyncpg.Connection, *, assignment_id: str, worker_id: str
) -> asyncpg.Record | None:
    """Why submit or return found nothing to change: the worker's assignment's status and
    whether its deadline has passed."""
    return await conn.fetchrow(
        "SELECT status, deadline <= now() AS overdue FROM assignments "
        "WHERE id = $1 AND worker_id = $2",
        assignment_id,
        worker_id,
    )


# Overdue accepted assignments (at least `$2` seconds past the deadline), oldest deadline first,
# skipping rows a submit or return holds right now (it decides them);
# ix_assignments_deadline_accepted serves the scan. The status is re-checked on the locked row,
# so an assignment expires once whoever runs this concurrently.
_EXPIRE_OVERDUE = """
WITH overdue AS (
    SELECT id FROM assignments
    WHERE status = 'accepted' AND deadline <= now() - make_interval(secs => $2)
    ORDER BY deadline
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE assignments a SET status = 'expired', ended_at = now()
FROM overdue WHERE a.id = overdue.id AND a.status = 'accepted'
RETURNING a.id, a.task_id, a.project_id
"""


async def expire_overdue(
    conn: asyncpg.Connection, *, limit: int, grace_seconds: float = 0.0
) -> list[asyncpg.Record]:
    return await conn.fetch(_EXPIRE_OVERDUE, limit, grace_seconds)


_WORKER_COLUMNS = f"{ASSIGNMENT_COLUMNS}, p.title AS project_title"
_LIST_FOR_WORKER = f"""
SELECT {_WORKER_COLUMNS}
FROM assignments a JOIN projects p ON p.id = a.project_id
WHERE a.worker_id = $1 {{status}} {{before}}
ORDER BY a.id DESC
LIMIT $2
"""


async def list_for_worker(
    conn: asyncpg.Connection,
    *,
    worker_id: str,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first along ix_assignments_worker_id_id (a worker's own history is human-sized)."""
    args: list[object] = [worker_id, limit]
    status_sql = before_sql = ""
    if status is not None:
        args.append(status)
        status_sql = f"AND a.status = ${len(args)}"
    if before_id is not None:
        args.append(before_id)
        before_sql = f"AND a.id < ${len(args)}"
    sql = _LIST_FOR_WORKER.format(status=status_sql, before=before_sql)
    return await conn.fetch(sql, *args)


async def project_owned_by(conn: asyncpg.Connection, *, project_id: str, requester_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM projects WHERE id = $1 AND requester_id = $2", project_id, requester_id
    )
    return bool(found)


# One index range per status on ix_assignments_project_id_status_id, merged: newest first over
# any set of statuses without sorting the project's whole history.
_LIST_FOR_PROJECT = f"""
SELECT {ASSIGNMENT_COLUMNS}
FROM unnest($2::text[]) AS s(status)
CROSS JOIN LATERAL (
    SELECT * FROM assignments x
    WHERE x.project_id = $1 AND x.status = s.status {{before}}
    ORDER BY x.id DESC
    LIMIT $3
) a
ORDER BY a.id DESC
LIMIT $3
"""
_LIST_FOR_PROJECT_FIRST = _LIST_FOR_PROJECT.format(before="")
_LIST_FOR_PROJECT_NEXT = _LIST_FOR_PROJECT.format(before="AND x.id < $4")


async def list_for_project(
    conn: asyncpg.Connection,
    *,
    project_id: str,
    statuses: list[str],
    before_id: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    if before_id is None:
        return await conn.fetch(_LIST_FOR_PROJECT_FIRST, project_id, statuses, limit)
    return await conn.fetch(_LIST_FOR_PROJECT_NEXT, project_id, statuses, limit, before_id)
