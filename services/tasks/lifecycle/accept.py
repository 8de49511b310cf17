"""Accept: a worker claims a slot of a project's task (published project, rules met).

Accept is the hot path: for a project whose rules SQL can decide (published, no
qualification requirements, no minimum gold accuracy, the worker not blocked) it is one
statement, the read and the first claim pass together (ACCEPT_FUSED_SQL: the fast path); the
other passes, and projects with other rules, claim with separate statements (the general
path). Its guarantees and how they hold under concurrency, the same on either path:
- one worker never gets two assignments of one task: the unique (task_id, worker_id), on which
  the claim's insert does nothing when the worker's own concurrent accept got there first (the
  claim is then tried again; see _CLAIM_CTES);
- never more than max_assignments live-or-approved per task: the claim decrements
  `open_slots` on the locked task row (CHECK open_slots >= 0);
- never "no work" while a slot this worker may take exists: SKIP LOCKED passes can skip a row
  another transaction holds for an instant (measured: ~1 in 1,000), so before answering no work
  a last pass waits for those locks and re-checks the rows.

The claim's rules exist once: `_CLAIM_CTES` is the template of both the claim alone
(CLAIM_SKIP_LOCKED_SQL / CLAIM_WAITING_SQL, the general path's passes) and the claim fused
behind accept's read (ACCEPT_FUSED_SQL). Accept emits no message; what it read for submit is
kept in accepted.py.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.tasks.assignments.schemas import AcceptedAssignment
from services.tasks.clock import Clock, utcnow
from services.tasks.gold import service as gold
from services.tasks.lifecycle.accepted import AcceptedAssignments, AcceptedContext
from services.tasks.lifecycle.assignment import HotRows
from shared.database import Writable
from shared.eligibility import ProjectRules, evaluate_with_facts, facts_from_row, worker_facts_sql
from shared.errors import Forbidden, NotFound
from shared.ids import new_id

MAX_CLAIM_RANK = 2_147_483_647
MAX_OWN_COLLISIONS = 8


class NoWorkAvailable(NotFound):
    code = "no_work_available"


class NotQualified(Forbidden):
    code = "not_qualified"


class Blocked(Forbidden):
    code = "blocked"


class GoldAccuracyTooLow(Forbidden):
    code = "gold_accuracy_too_low"


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
# Pay tiers (services/tasks/pay_tiers): `reward_cents` and `fee_cents` are the caller's, the
# tier of the worker's level read now (the one the claim writes into the assignment); without
# tiers the project's. The level is one primary-key probe of worker_levels beside the block
# check, run only for a project with tiers (a CASE evaluates its sub-select only when taken);
# `tier_level` is NULL otherwise.
_PROJECT_FOR_ACCEPT = f"""
    SELECT p.id, p.requester_id, p.status,
           coalesce(p.level_reward_cents[block.tier_level + 1], p.reward_cents) AS reward_cents,
           coalesce(p.level_fee_cents[block.tier_level + 1], p.fee_cents) AS fee_cents,
           p.assignment_duration_seconds, p.qualification_requirements, p.min_gold_accuracy,
           p.task_type, p.labels, p.multi_label, p.answer_schema,
           p.tasks_expire_at, g.answered AS gold_answered, g.correct AS gold_correct,
           block.blocked,
           p.status = 'published' AND {_NO_REQUIREMENTS}
               AND p.min_gold_accuracy IS NULL AND NOT block.blocked
               AND p.pay_model = 'per_assignment' AND p.kind = 'standard' AS sql_rules_passed,
           p.pay_model, p.kind, block.tier_level,
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
        ) AS blocked,
        CASE WHEN p.level_reward_cents IS NOT NULL OR p.level_hourly_rate_cents IS NOT NULL
             THEN coalesce((SELECT l.level FROM worker_levels l WHERE l.worker_id = $2), 0)
        END AS tier_level
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
                                  reward_cents, fee_cents, accepted_at, deadline,
                                  standing_excluded)
    SELECT $4, picked.id, $1, {requester_id}, $2, 'accepted', {reward_cents}, {fee_cents}, now(),
           now() + make_interval(secs => {duration_seconds}), {standing_excluded}
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
    # A training project's answers never count toward the worker's standing.
    "standing_excluded": "$9::boolean",
    "terms_from": "",
}
CLAIM_SKIP_LOCKED_SQL = _CLAIM.format(wait="SKIP LOCKED", **_CLAIM_ALONE_TERMS)
CLAIM_WAITING_SQL = _CLAIM.format(wait="", **_CLAIM_ALONE_TERMS)


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
        standing_excluded="project.kind = 'training'",  # false: training is never fused
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim pass's columns (CLAIM_*_SQL): `picked_task_id` alone when the worker's own
    concurrent accept took the picked task."""

    picked_task_id: str | None
    id: str | None
    task_id: str | None
    accepted_at: datetime | None
    deadline: datetime | None
    input: Any
    gold_answer: Any


@dataclass(frozen=True, slots=True)
class AcceptEligibility:
    """`_PROJECT_FOR_ACCEPT`'s columns: the project, the worker's tally, block and facts (NULL
    without requirements): what admits a worker to the project's work (accept, and opening a
    work session: services/tasks/sessions)."""

    id: str
    requester_id: str
    status: str
    reward_cents: int
    fee_cents: int
    assignment_duration_seconds: int
    qualification_requirements: Any
    min_gold_accuracy: int | None
    task_type: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] | None
    tasks_expire_at: datetime | None
    gold_answered: int | None
    gold_correct: int | None
    blocked: bool
    sql_rules_passed: bool
    pay_model: str
    kind: str  # 'training': admitted by services/tasks/training, never on the fused path
    tier_level: int | None  # the level the pay tiers were read for; NULL: no tiers
    country: str | None
    submitted: int | None
    approved: int | None
    rejected: int | None
    blocked_by: list[str] | None
    type_ids: list[str] | None
    type_values: list[Any] | None
    level: int | None  # the worker's system.level (shared.eligibility); NULL like the facts


@dataclass(frozen=True, slots=True)
class ProjectForAccept(AcceptEligibility):
    """ACCEPT_FUSED_SQL's row: the eligibility columns, then the first claim pass's columns
    (NULL when it did not run or found nothing)."""

    picked_task_id: str | None
    assignment_id: str | None
    task_id: str | None
    accepted_at: datetime | None
    deadline: datetime | None
    input: Any
    gold_answer: Any


_CLAIM_ROWS = HotRows(Claim)
_PROJECT_ROWS = HotRows(ProjectForAccept)


async def read_and_claim_first(
    db: Writable, *, project_id: str, worker_id: str, assignment_id: str, from_rank: int
) -> ProjectForAccept | None:
    """What accept decides on plus, when SQL could decide the rules and they passed
    (`sql_rules_passed`), the first claim pass's columns. None for an unknown project."""
    return await _PROJECT_ROWS.fetchrow(
        db, ACCEPT_FUSED_SQL, project_id, worker_id, from_rank, assignment_id
    )


async def claim_slot(
    db: Writable,
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
    standing_excluded: bool = False,
) -> Claim | None:
    return await _CLAIM_ROWS.fetchrow(
        db,
        CLAIM_SKIP_LOCKED_SQL if skip_locked else CLAIM_WAITING_SQL,
        project_id,
        worker_id,
        from_rank,
        assignment_id,
        requester_id,
        reward_cents,
        fee_cents,
        duration_seconds,
        standing_excluded,
    )


# --------------------------------------------------------------------------- the transition


async def accept(
    db: Writable,
    *,
    worker_id: str,
    project_id: str,
    accepted: AcceptedAssignments | None = None,
    clock: Clock = utcnow,
) -> AcceptedAssignment:
    """One round trip when SQL can decide the project's rules (ACCEPT_FUSED_SQL, the fast path):
    the read and the first claim pass are one statement. Otherwise, or when that pass finds no
    task, the remaining passes run as separate claims (the general path). Every statement is
    atomic on its own: no transaction needed."""
    assignment_id = new_id()
    start = random.randint(0, MAX_CLAIM_RANK)
    project = await read_and_claim_first(
        db, project_id=project_id, worker_id=worker_id, assignment_id=assignment_id, from_rank=start
    )
    if project is None or project.status != "published":
        raise NoWorkAvailable("This project has no work available.")
    if project.sql_rules_passed:
        if project.assignment_id is not None:
            return _accepted(
                project,
                project_id=project_id,
                assignment_id=project.assignment_id,
                claim=project,
                worker_id=worker_id,
                accepted=accepted,
            )
        # The first pass ran: what is left are the passes after it, and if it picked a task
        # its insert met this worker's own concurrent accept (counted like any other such
        # collision, and that pass tried again).
        collided = project.picked_task_id is not None
        passes = _claim_passes(start, first_done=not collided)
        collisions = int(collided)
    else:
        # A rule SQL does not decide (requirements, minimum gold accuracy) or a refusal (a
        # block): decided on the facts, as it always was, and the error names why.
        check_eligibility(project)
        check_gold_accuracy(project)
        if project.pay_model == "hourly":
            # Hourly work happens inside the worker's open session, and accepting is activity
            # that keeps it alive (services/tasks/sessions).
            from services.tasks.sessions.service import activity_for_work

            await activity_for_work(
                db, worker_id=worker_id, project_id=project_id, now=clock(), what="accept"
            )
        if project.kind == "training":
            # The worker's attempt: started now, or refused (passed, or waiting to retry).
            from services.tasks.training.service import admit

            await admit(db, project_id=project_id, worker_id=worker_id)
        passes = _claim_passes(start, first_done=False)
        collisions = 0
    while passes:
        from_rank, skip_locked = passes.popleft()
        row = await claim_slot(
            db,
            project_id=project_id,
            worker_id=worker_id,
            requester_id=project.requester_id,
            assignment_id=assignment_id,
            reward_cents=project.reward_cents,
            fee_cents=project.fee_cents,
            duration_seconds=project.assignment_duration_seconds,
            from_rank=from_rank,
            skip_locked=skip_locked,
            standing_excluded=project.kind == "training",
        )
        if row is None:
            continue
        if row.id is None:
            # This worker's own concurrent accept took that very task a moment ago: the same
            # pass again, in a new snapshot that shows it (bounded: each collision is a task
            # the worker now holds, skipped from then on).
            collisions += 1
            if collisions <= MAX_OWN_COLLISIONS:
                passes.appendleft((from_rank, skip_locked))
            continue
        return _accepted(
            project,
            project_id=project_id,
            assignment_id=row.id,
            claim=row,
            worker_id=worker_id,
            accepted=accepted,
        )
    raise NoWorkAvailable("No task of this project is left for you right now.")


def _claim_passes(start: int, *, first_done: bool) -> deque[tuple[int, bool]]:
    """(from rank, skip locked) of each claim pass still to run: from the random rank; then
    from rank 0 (wrapping around); then the same, waiting for rows other transactions hold
    instead of skipping them. `first_done`: the fused statement already ran the first."""
    passes = deque([(start, True), *([(0, True)] if start else []), (0, False)])
    if first_done:
        passes.popleft()
    return passes


def _accepted(
    project: ProjectForAccept,
    *,
    project_id: str,
    assignment_id: str,
    claim: ProjectForAccept | Claim,
    worker_id: str,
    accepted: AcceptedAssignments | None,
) -> AcceptedAssignment:
    """The response: the claim's columns, and the reward the project was read with (the one
    the assignment was created with). What submit will check the answer on is kept (see
    accepted.py). Not for an hourly project: its submit must also count as session activity,
    which the general path (it reads the project) decides; nor for a training project, whose
    submit is approved and counted at once (services/tasks/training), on the general path."""
    if accepted is not None and project.pay_model != "hourly" and project.kind != "training":
        accepted.remember(
            assignment_id,
            AcceptedContext(
                worker_id=worker_id,
                task_type=project.task_type,
                labels=project.labels,
                multi_label=project.multi_label,
                answer_schema=project.answer_schema,
                gold_answer=claim.gold_answer,
            ),
        )
    return AcceptedAssignment(
        assignment_id=assignment_id,
        task_id=claim.task_id,
        project_id=project_id,
        input=claim.input,
        reward=project.reward_cents,
        accepted_at=claim.accepted_at,
        deadline=claim.deadline,
    )


def check_gold_accuracy(project: AcceptEligibility) -> None:
    if gold.gold_accuracy_failed(
        min_gold_accuracy=project.min_gold_accuracy,
        answered=project.gold_answered,
        correct=project.gold_correct,
    ):
        raise GoldAccuracyTooLow(
            f"Your accuracy on this project's gold tasks is below its minimum of "
            f"{project.min_gold_accuracy}%.",
            extra={
                "min_gold_accuracy": project.min_gold_accuracy,
                "gold_answered": project.gold_answered,
                "gold_correct": project.gold_correct,
            },
        )


def check_eligibility(project: AcceptEligibility) -> None:
    """On the columns read with the project (ACCEPT_FUSED_SQL): the block always, the worker's
    facts only when there are requirements (the statement reads them only then)."""
    if project.blocked:
        raise Blocked("The requester of this project has blocked you.")
    requirements = list(project.qualification_requirements or [])
    if not requirements:
        return
    rules = ProjectRules(
        project_id=project.id, requester_id=project.requester_id, requirements=requirements
    )
    facts = facts_from_row(
        {
            "country": project.country,
            "submitted": project.submitted,
            "approved": project.approved,
            "rejected": project.rejected,
            "type_ids": project.type_ids,
            "type_values": project.type_values,
            "blocked_by": project.blocked_by,
            "level": project.level,
        }
    )
    verdict = evaluate_with_facts(facts, rules)
    if verdict.blocked:  # the facts' own view of the block, in the same snapshot
        raise Blocked("The requester of this project has blocked you.")
    if not verdict.accept.ok:
        unmet = [failure.to_dict() for failure in verdict.accept.failures]
        reasons = "; ".join(f"{u['qualification_type_id']}: {u['reason']}" for u in unmet)
        raise NotQualified(
            f"You do not meet this project's requirements: {reasons}.",
            extra={"unmet_requirements": unmet},
        )
