"""Submit: the holder's answer, checked against the project's answer format and graded against
the task's gold answer, makes the accepted assignment `submitted` (within its deadline).

- General path: read (`_FOR_SUBMIT`), check, then one write that re-checks the state
  (SUBMIT_SQL): no transaction needed, and a refused answer writes nothing.
- Fast path: when this process handed out the assignment, the check runs on what accept read
  (accepted.py) and the write is all (SUBMIT_IF_UNCHANGED_SQL, which also requires the format
  and gold answer checked on to be still the current ones; otherwise the general path runs).
Both writes are one template (`_SUBMIT`). Submit emits no message (the worker's gold tally
moves in the same statement).
- `mturk_question` tasks: the answer is also checked against the task's own question
  (`task_answer_problems`), so they take the general path, whose read fetches the task's input
  for that type only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.tasks.answers import (
    QUESTION_TASK_TYPE,
    effective_answer_schema,
    task_answer_problems,
    validate_answer,
)
from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.clock import Clock, utcnow
from services.tasks.gold import service as gold
from services.tasks.lifecycle.accepted import AcceptedAssignments, AcceptedContext
from services.tasks.lifecycle.assignment import (
    ASSIGNMENT_COLUMNS,
    ASSIGNMENT_ROWS,
    AssignmentNotFound,
    AssignmentRow,
    HotRows,
    assignment_read,
    get_status_for_worker,
    refuse_unless_open,
)
from shared.database import Db, Writable, in_transaction
from shared.errors import InvalidState, ValidationFailed
from shared.jsonutil import dumps

# What submit checks the answer against: the holder's assignment, its project's answer schema
# and the task's gold answer. Read without a lock: SUBMIT_SQL decides on the row itself.
_FOR_SUBMIT = f"""
SELECT {ASSIGNMENT_COLUMNS}, a.deadline <= now() AS overdue,
       p.task_type, p.labels, p.multi_label, p.answer_schema,
       t.gold_answer, p.pay_model, p.kind, t.explanation, p.requester_id AS project_requester_id,
       CASE WHEN p.task_type = 'mturk_question' THEN t.input END AS task_input
FROM assignments a
JOIN projects p ON p.id = a.project_id
JOIN tasks t ON t.id = a.task_id
WHERE a.id = $1 AND a.worker_id = $2
"""


@dataclass(frozen=True, slots=True)
class ForSubmit(AssignmentRow):
    """`_FOR_SUBMIT`'s row: the assignment (ASSIGNMENT_COLUMNS), whether it is overdue, the
    project's answer format and the task's gold answer."""

    overdue: bool
    task_type: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] | None
    gold_answer: Any
    pay_model: str
    kind: str
    explanation: str | None
    project_requester_id: str
    task_input: Any
    """The task's input where the answer is checked against it (mturk_question: the question);
    NULL for every other type, so their submits read no input."""


_FOR_SUBMIT_ROWS = HotRows(ForSubmit)


async def get_for_submit(db: Db, *, assignment_id: str, worker_id: str) -> ForSubmit | None:
    return await _FOR_SUBMIT_ROWS.fetchrow(db, _FOR_SUBMIT, assignment_id, worker_id)


# Submit, once the answer is known to fit, in one statement (atomic on its own, so the request
# needs no BEGIN/COMMIT): the holder's accepted assignment, if its deadline has not passed,
# becomes `submitted`, and the worker's tally in the project (gold_stats: submissions, and gold
# answers given and right, for the owner's per-worker page and the gold-accuracy gate) moves by
# the deltas given. Postgres re-checks the WHERE on a row another transaction changed since the
# read (a timer expiring it, a return, a concurrent submit), so it is decided exactly once.
# A gold answer's grading is also kept on the assignment (`gold_correct`, NULL for other
# answers): the worker levels judge the last 200 gold answers across projects from it.
_SUBMIT = f"""
WITH updated AS (
    UPDATE assignments a
    SET status = 'submitted', answer = $3::jsonb, submitted_at = now(),
        auto_approve_at = now() + make_interval(secs => p.auto_approve_seconds),
        gold_correct = CASE WHEN $4::int = 1 THEN $5::int = 1 END
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

# The same write for an answer checked against what accept read (accepted.py) instead of a
# fresh read: it also requires that the project's answer format and
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


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer as the submit statements store it, with its gold grading (the increments of
    the worker's gold counters)."""

    answer_json: str
    gold_answered: int
    gold_correct: int

    @classmethod
    def grade(cls, answer: Any, *, task_type: str, gold_answer: Any) -> StoredAnswer:
        graded = gold.grade(task_type=task_type, answer=answer, gold_answer=gold_answer)
        return cls(dumps(answer).decode(), 0 if graded is None else 1, int(bool(graded)))


async def write_submission(
    db: Writable, *, assignment_id: str, worker_id: str, stored: StoredAnswer
) -> AssignmentRow | None:
    """None when the worker no longer holds an accepted assignment of that id within its
    deadline (it changed since get_for_submit)."""
    return await ASSIGNMENT_ROWS.fetchrow(
        db,
        SUBMIT_SQL,
        assignment_id,
        worker_id,
        stored.answer_json,
        stored.gold_answered,
        stored.gold_correct,
    )


async def write_submission_if_unchanged(
    db: Writable,
    *,
    assignment_id: str,
    worker_id: str,
    stored: StoredAnswer,
    task_type: str,
    labels_json: str | None,
    multi_label: bool,
    answer_schema_json: str | None,
    gold_answer_json: str | None,
) -> AssignmentRow | None:
    """None when the assignment is not the worker's open one any more, or when the format or
    the gold answer given is not the current one."""
    return await ASSIGNMENT_ROWS.fetchrow(
        db,
        SUBMIT_IF_UNCHANGED_SQL,
        assignment_id,
        worker_id,
        stored.answer_json,
        stored.gold_answered,
        stored.gold_correct,
        task_type,
        labels_json,
        multi_label,
        answer_schema_json,
        gold_answer_json,
    )


# --------------------------------------------------------------------------- the transition


async def submit(
    db: Writable,
    *,
    worker_id: str,
    assignment_id: str,
    answer: Any,
    accepted: AcceptedAssignments | None = None,
    clock: Clock = utcnow,
) -> AssignmentRead:
    """Read, check, then one write that re-checks the state (SUBMIT_SQL): no transaction
    needed, and a refused answer writes nothing. When this process handed out the assignment,
    the check runs on what accept read and the write is all (accepted.py)."""
    context = accepted.take(assignment_id, worker_id) if accepted is not None else None
    if context is not None:
        submitted = await _submit_as_accepted(
            db, context, worker_id=worker_id, assignment_id=assignment_id, answer=answer
        )
        if submitted is not None:
            return submitted
    row = await get_for_submit(db, assignment_id=assignment_id, worker_id=worker_id)
    if row is None:
        raise AssignmentNotFound("Assignment not found.")
    refuse_unless_open(row.status, overdue=row.overdue)
    schema = effective_answer_schema(row)
    problems = validate_answer(schema, answer) or task_answer_problems(
        row.task_type, row.task_input, answer
    )
    if problems:
        errors = [{"loc": ["body", "answer", *p["loc"]], "msg": p["msg"]} for p in problems]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        raise ValidationFailed(f"The answer does not fit this project: {detail}", errors=errors)
    if row.pay_model == "hourly" and row.status == "accepted" and not row.overdue:
        # In an hourly project the answer is given inside the worker's open session and counts
        # as its activity (services/tasks/sessions); without one it is refused, unchanged.
        from services.tasks.sessions.service import activity_for_work

        await activity_for_work(
            db, worker_id=worker_id, project_id=row.project_id, now=clock(), what="submit"
        )
    stored = StoredAnswer.grade(answer, task_type=row.task_type, gold_answer=row.gold_answer)
    if row.kind == "training":
        return await _submit_training(
            db, row, assignment_id=assignment_id, worker_id=worker_id, stored=stored
        )
    updated = await write_submission(
        db, assignment_id=assignment_id, worker_id=worker_id, stored=stored
    )
    if updated is None:  # expired, returned or submitted since the read
        found = await get_status_for_worker(db, assignment_id=assignment_id, worker_id=worker_id)
        if found is None:
            raise AssignmentNotFound("Assignment not found.")
        refuse_unless_open(found.status, overdue=found.overdue)
        raise InvalidState("This assignment changed while it was being submitted.")
    return assignment_read(updated)


async def _submit_training(
    db: Writable, row: ForSubmit, *, assignment_id: str, worker_id: str, stored: StoredAnswer
) -> AssignmentRead:
    """A training answer: written, approved and counted in the worker's attempt in one
    transaction, answered with the grade, the expected answer and the explanation
    (services/tasks/training)."""
    from services.tasks.training.service import after_submit

    async with in_transaction(db) as tx:
        updated = await write_submission(
            tx, assignment_id=assignment_id, worker_id=worker_id, stored=stored
        )
        if updated is not None:
            return await after_submit(
                tx,
                submitted=assignment_read(updated),
                requester_id=row.project_requester_id,
                correct=stored.gold_correct == 1,
                gold_answer=row.gold_answer,
                explanation=row.explanation,
            )
    found = await get_status_for_worker(db, assignment_id=assignment_id, worker_id=worker_id)
    if found is None:
        raise AssignmentNotFound("Assignment not found.")
    refuse_unless_open(found.status, overdue=found.overdue)
    raise InvalidState("This assignment changed while it was being submitted.")


async def _submit_as_accepted(
    db: Writable,
    context: AcceptedContext,
    *,
    worker_id: str,
    assignment_id: str,
    answer: Any,
) -> AssignmentRead | None:
    """One statement, or None for the general path: the answer does not fit the kept format (a
    422 must be judged on the current one), or the write found the state, the format or the
    gold answer changed (the general path then answers exactly as if this had not been
    tried)."""
    if context.task_type == QUESTION_TASK_TYPE:
        return None  # checked against the task's question, which accept did not keep
    schema = effective_answer_schema(context)
    if validate_answer(schema, answer):
        return None
    row = await write_submission_if_unchanged(
        db,
        assignment_id=assignment_id,
        worker_id=worker_id,
        stored=StoredAnswer.grade(
            answer, task_type=context.task_type, gold_answer=context.gold_answer
        ),
        task_type=context.task_type,
        labels_json=_json_or_none(context.labels),
        multi_label=context.multi_label,
        answer_schema_json=_json_or_none(context.answer_schema),
        gold_answer_json=_json_or_none(context.gold_answer),
    )
    return None if row is None else assignment_read(row)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value).decode()
