"""The worker's side of the queue: accept a slot, submit an answer, give it back; expiry.

Accept is the hot path: for a project whose rules SQL can decide (published, no
qualification requirements, no minimum gold accuracy, the worker not blocked) it is one
statement, the read and the first claim pass together (repository.ACCEPT_FUSED_SQL); the other
passes, and projects with other rules, claim with separate statements. Its guarantees and how
they hold under concurrency, the same on either path:
- one worker never gets two assignments of one task: the unique (task_id, worker_id), on which
  the claim's insert does nothing when the worker's own concurrent accept got there first (the
  claim is then tried again; see repository._CLAIM_CTES);
- never more than max_assignments live-or-approved per task: the claim decrements
  `open_slots` on the locked task row (CHECK open_slots >= 0);
- never "no work" while a slot this worker may take exists: SKIP LOCKED passes can skip a row
  another transaction holds for an instant (measured: ~1 in 1,000), so before answering no work
  a last pass waits for those locks and re-checks the rows.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from services.tasks.answers import answer_schema_for, validate_answer
from services.tasks.assignments import repository
from services.tasks.assignments.accepted import AcceptedAssignments, AcceptedContext
from services.tasks.assignments.schemas import (
    AcceptedAssignment,
    AssignmentRead,
    AssignmentStatus,
    WorkerAssignmentRead,
)
from services.tasks.gold import service as gold
from services.tasks.slots import SlotReturn, give_back_slot, give_back_slots
from shared.db import atomic, driver_connection
from shared.eligibility import ProjectRules, evaluate_with_facts, facts_from_row
from shared.errors import Conflict, Forbidden, InvalidState, NotFound, ValidationFailed
from shared.ids import new_id
from shared.jsonutil import dumps
from shared.pagination import PageParams

MAX_CLAIM_RANK = 2_147_483_647
MAX_OWN_COLLISIONS = 8
ALL_STATUSES: list[str] = ["accepted", "submitted", "approved", "rejected", "returned", "expired"]


class NoWorkAvailable(NotFound):
    code = "no_work_available"


class AssignmentNotFound(NotFound):
    code = "not_found"


class ProjectNotFound(NotFound):
    code = "not_found"


class NotQualified(Forbidden):
    code = "not_qualified"


class Blocked(Forbidden):
    code = "blocked"


class GoldAccuracyTooLow(Forbidden):
    code = "gold_accuracy_too_low"


class AssignmentExpired(Conflict):
    code = "assignment_expired"


def _assignment_fields(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "task_id": row["task_id"],
        "project_id": row["project_id"],
        "worker_id": row["worker_id"],
        "status": row["status"],
        "answer": row["answer"],
        "feedback": row["feedback"],
        "reward": row["reward_cents"],
        "accepted_at": row["accepted_at"],
        "deadline": row["deadline"],
        "submitted_at": row["submitted_at"],
        "reviewed_at": row["reviewed_at"],
        "auto_approve_at": row["auto_approve_at"],
    }


def assignment_read(row: asyncpg.Record) -> AssignmentRead:
    """An assignment row selected with repository.ASSIGNMENT_COLUMNS, as the API shows it."""
    return AssignmentRead(**_assignment_fields(row))


async def accept(
    conn: asyncpg.Connection,
    *,
    worker_id: str,
    project_id: str,
    accepted: AcceptedAssignments | None = None,
) -> AcceptedAssignment:
    """One round trip when SQL can decide the project's rules (repository.ACCEPT_FUSED_SQL):
    the read and the first claim pass are one statement. Otherwise, or when that pass finds no
    task, the remaining passes run as separate claims."""
    assignment_id = new_id()
    start = random.randint(0, MAX_CLAIM_RANK)
    project = await repository.read_and_claim_first(
        conn,
        project_id=project_id,
        worker_id=worker_id,
        assignment_id=assignment_id,
        from_rank=start,
    )
    if project is None or project["status"] != "published":
        raise NoWorkAvailable("This project has no work available.")
    if project["sql_rules_passed"]:
        if project["assignment_id"] is not None:
            return _accepted(
                project,
                project_id=project_id,
                assignment_id=project["assignment_id"],
                claim=project,
                worker_id=worker_id,
                accepted=accepted,
            )
        # The first pass ran: what is left are the passes after it, and if it picked a task
        # its insert met this worker's own concurrent accept (counted like any other such
        # collision, and that pass tried again).
        collided = project["picked_task_id"] is not None
        passes = _claim_passes(start, first_done=not collided)
        collisions = int(collided)
    else:
        # A rule SQL does not decide (requirements, minimum gold accuracy) or a refusal (a
        # block): decided on the facts, as it always was, and the error names why.
        _check_eligibility(project)
        _check_gold_accuracy(project)
        passes = _claim_passes(start, first_done=False)
        collisions = 0
    claim: dict[str, Any] = {
        "project_id": project_id,
        "worker_id": worker_id,
        "requester_id": project["requester_id"],
        "assignment_id": assignment_id,
        "reward_cents": project["reward_cents"],
        "fee_cents": project["fee_cents"],
        "duration_seconds": project["assignment_duration_seconds"],
    }
    while passes:
        from_rank, skip_locked = passes.popleft()
        row = await repository.claim_slot(
            conn, **claim, from_rank=from_rank, skip_locked=skip_locked
        )
        if row is None:
            continue
        if row["id"] is None:
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
            assignment_id=row["id"],
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
    project: asyncpg.Record,
    *,
    project_id: str,
    assignment_id: str,
    claim: asyncpg.Record,
    worker_id: str,
    accepted: AcceptedAssignments | None,
) -> AcceptedAssignment:
    """The response: the claim's columns, and the reward the project was read with (the one
    the assignment was created with). What submit will check the answer on is kept (see
    accepted.py)."""
    if accepted is not None:
        accepted.remember(
            assignment_id,
            AcceptedContext(
                worker_id=worker_id,
                task_type=project["task_type"],
                labels=project["labels"],
                multi_label=project["multi_label"],
                answer_schema=project["answer_schema"],
                gold_answer=claim["gold_answer"],
            ),
        )
    return AcceptedAssignment(
        assignment_id=assignment_id,
        task_id=claim["task_id"],
        project_id=project_id,
        input=claim["input"],
        reward=project["reward_cents"],
        accepted_at=claim["accepted_at"],
        deadline=claim["deadline"],
    )


def _check_gold_accuracy(project: asyncpg.Record) -> None:
    if gold.gold_accuracy_failed(
        min_gold_accuracy=project["min_gold_accuracy"],
        answered=project["gold_answered"],
        correct=project["gold_correct"],
    ):
        raise GoldAccuracyTooLow(
            f"Your accuracy on this project's gold tasks is below its minimum of "
            f"{project['min_gold_accuracy']}%.",
            extra={
                "min_gold_accuracy": project["min_gold_accuracy"],
                "gold_answered": project["gold_answered"],
                "gold_correct": project["gold_correct"],
            },
        )


def _check_eligibility(project: asyncpg.Record) -> None:
    """On the columns read with the project (repository.ACCEPT_FUSED_SQL): the block always,
    the worker's facts only when there are requirements (the statement reads them only then)."""
    if project["blocked"]:
        raise Blocked("The requester of this project has blocked you.")
    requirements = list(project["qualification_requirements"] or [])
    if not requirements:
        return
    rules = ProjectRules(
        project_id=project["id"], requester_id=project["requester_id"], requirements=requirements
    )
    verdict = evaluate_with_facts(facts_from_row(project), rules)
    if verdict.blocked:  # the facts' own view of the block, in the same snapshot
        raise Blocked("The requester of this project has blocked you.")
    if not verdict.accept.ok:
        unmet = [failure.to_dict() for failure in verdict.accept.failures]
        reasons = "; ".join(f"{u['qualification_type_id']}: {u['reason']}" for u in unmet)
        raise NotQualified(
            f"You do not meet this project's requirements: {reasons}.",
            extra={"unmet_requirements": unmet},
        )


async def submit(
    conn: asyncpg.Connection,
    *,
    worker_id: str,
    assignment_id: str,
    answer: Any,
    accepted: AcceptedAssignments | None = None,
) -> AssignmentRead:
    """Read, check, then one write that re-checks the state (repository.SUBMIT_SQL): no
    transaction needed, and a refused answer writes nothing. When this process handed out the
    assignment, the check runs on what accept read and the write is all (accepted.py)."""
    context = accepted.take(assignment_id, worker_id) if accepted is not None else None
    if context is not None:
        submitted = await _submit_as_accepted(
            conn, context, worker_id=worker_id, assignment_id=assignment_id, answer=answer
        )
        if submitted is not None:
            return submitted
    row = await repository.get_for_submit(conn, assignment_id=assignment_id, worker_id=worker_id)
    if row is None:
        raise AssignmentNotFound("Assignment not found.")
    _refuse_unless_open(row["status"], overdue=row["overdue"])
    schema = answer_schema_for(
        task_type=row["task_type"],
        labels=row["labels"],
        multi_label=row["multi_label"],
        answer_schema=row["answer_schema"],
    )
    problems = validate_answer(schema, answer)
    if problems:
        errors = [{"loc": ["body", "answer", *p["loc"]], "msg": p["msg"]} for p in problems]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        raise ValidationFailed(f"The answer does not fit this project: {detail}", errors=errors)
    graded = gold.grade(task_type=row["task_type"], answer=answer, gold_answer=row["gold_answer"])
    updated = await repository.submit(
        conn,
        assignment_id=assignment_id,
        worker_id=worker_id,
        answer_json=dumps(answer).decode(),
        gold_answered=0 if graded is None else 1,
        gold_correct=int(bool(graded)),
    )
    if updated is None:  # expired, returned or submitted since the read
        found = await repository.get_status_for_worker(
            conn, assignment_id=assignment_id, worker_id=worker_id
        )
        if found is None:
            raise AssignmentNotFound("Assignment not found.")
        _refuse_unless_open(found["status"], overdue=found["overdue"])
        raise InvalidState("This assignment changed while it was being submitted.")
    return assignment_read(updated)


async def _submit_as_accepted(
    conn: asyncpg.Connection,
    context: AcceptedContext,
    *,
    worker_id: str,
    assignment_id: str,
    answer: Any,
) -> AssignmentRead | None:
    """One statement, or None for the read path: the answer does not fit the kept format (a
    422 must be judged on the current one), or the write found the state, the format or the
    gold answer changed (the read path then answers exactly as if this had not been tried)."""
    schema = answer_schema_for(
        task_type=context.task_type,
        labels=context.labels,
        multi_label=context.multi_label,
        answer_schema=context.answer_schema,
    )
    if validate_answer(schema, answer):
        return None
    graded = gold.grade(task_type=context.task_type, answer=answer, gold_answer=context.gold_answer)
    row = await repository.submit_if_unchanged(
        conn,
        assignment_id=assignment_id,
        worker_id=worker_id,
        answer_json=dumps(answer).decode(),
        gold_answered=0 if graded is None else 1,
        gold_correct=int(bool(graded)),
        task_type=context.task_type,
        labels_json=_json_or_none(context.labels),
        multi_label=context.multi_label,
        answer_schema_json=_json_or_none(context.answer_schema),
        gold_answer_json=_json_or_none(context.gold_answer),
    )
    return None if row is None else assignment_read(row)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value).decode()


def _refuse_unless_open(status: str, *, overdue: bool) -> None:
    if status == "expired" or (status == "accepted" and overdue):
        raise AssignmentExpired(
            "The deadline of this assignment has passed; its answer can no longer be taken."
        )
    if status != "accepted":
        raise InvalidState(f"Only an accepted assignment can be submitted; this one is {status}.")


async def return_assignment(
    conn: asyncpg.Connection, *, worker_id: str, assignment_id: str
) -> AssignmentRead:
    """The holder gives the task back: the slot reopens at once (even past the deadline: the
    holder is done with it, so there is no reason to keep it locked until the timer runs)."""
    async with atomic(conn):
        return await _return_assignment(conn, worker_id=worker_id, assignment_id=assignment_id)


async def _return_assignment(
    conn: asyncpg.Connection, *, worker_id: str, assignment_id: str
) -> AssignmentRead:
    row = await repository.return_assignment(conn, assignment_id=assignment_id, worker_id=worker_id)
    if row is None:
        found = await repository.get_status_for_worker(
            conn, assignment_id=assignment_id, worker_id=worker_id
        )
        if found is None:
            raise AssignmentNotFound("Assignment not found.")
        status = found["status"]
        if status == "expired":
            raise AssignmentExpired("The deadline of this assignment has passed.")
        raise InvalidState(f"Only an accepted assignment can be returned; this one is {status}.")
    await give_back_slot(
        conn,
        task_id=row["task_id"],
        project_id=row["project_id"],
        reason_key=f"release:slot:{row['id']}",
    )
    return assignment_read(row)


async def expire_overdue_assignments(
    conn: asyncpg.Connection, limit: int, *, grace_seconds: float = 0.0
) -> int:
    """For the deadline timer: accepted assignments past their deadline (by `grace_seconds`)
    become `expired` and their slots come back (or their money is released). Returns how many
    expired.

    Run it in a transaction of its own; rows a concurrent submit or return holds are left for
    the next run.
    """
    rows = await repository.expire_overdue(conn, limit=limit, grace_seconds=grace_seconds)
    await give_back_slots(
        conn,
        [
            SlotReturn(
                task_id=r["task_id"],
                project_id=r["project_id"],
                release_key=f"release:slot:{r['id']}",
            )
            for r in rows
        ],
    )
    return len(rows)


async def list_for_worker(
    session: AsyncSession,
    *,
    worker_id: str,
    status: AssignmentStatus | None,
    page: PageParams,
) -> tuple[list[WorkerAssignmentRead], str | None]:
    conn = await driver_connection(session)
    before = str(page.cursor[0]) if page.cursor else None
    rows = await repository.list_for_worker(
        conn, worker_id=worker_id, status=status, before_id=before, limit=page.fetch
    )
    kept, next_cursor = page.page(rows, lambda r: [r["id"]])
    return [
        WorkerAssignmentRead(**_assignment_fields(r), project_title=r["project_title"])
        for r in kept
    ], next_cursor


async def list_for_project(
    session: AsyncSession,
    *,
    requester_id: str,
    project_id: str,
    status: AssignmentStatus | None,
    page: PageParams,
) -> tuple[list[AssignmentRead], str | None]:
    conn = await driver_connection(session)
    if not await repository.project_owned_by(
        conn, project_id=project_id, requester_id=requester_id
    ):
        raise ProjectNotFound("Project not found.")
    before = str(page.cursor[0]) if page.cursor else None
    rows = await repository.list_for_project(
        conn,
        project_id=project_id,
        statuses=[status] if status else ALL_STATUSES,
        before_id=before,
        limit=page.fetch,
    )
    kept, next_cursor = page.page(rows, lambda r: [r["id"]])
    return [assignment_read(r) for r in kept], next_cursor
