"""Training projects (docs/api.md, "Training projects").

A project of `kind: "training"` trains workers on tasks whose answers are known: each task
carries a gold answer and an explanation; a worker takes the work like any other (discovery,
preview, accept, submit) and gets the grade, the expected answer and the explanation in the
response of each submit. After `min_training_answers` answers of one attempt the attempt is
decided: at `pass_accuracy` percent or more the worker is granted the project's qualification
type with the accuracy (0-100, rounded down) as its value; below it the attempt fails and the
worker may try again after the type's retry delay (never, when the type has none).

Decisions, and why:
- **Never standing.** Every training assignment is created with `standing_excluded = true`
  (accept's one INSERT), so it never counts toward the worker's approval rate, approved count
  or level figures.
- **Approved at submit.** A training answer is graded against the gold answer and approved in
  the same transaction as the submit, by the lifecycle's approval (the slot is consumed, the
  tally counts it, the payout is the usual `pay:{assignment}` outbox message): right or wrong,
  the reward pays for the practice, and the requester has nothing to review. A project paying
  0.00 moves no money (its zero payout is not sent).
- **The grant leaves through the outbox.** The pass and its grant message
  (`grant:training:{project}:{worker}`, delivered to the workers service's
  `POST /internal/qualification-grants`) commit together, so a crash between the commit and
  the call only delays the grant; the workers service sets the grant idempotently.
- **Exactly once.** All of a worker's submits in a project count on one `training_progress`
  row under its lock; only the statement that moves the attempt to `passed` enqueues the grant
  (and its key is unique besides).
- **Retries use fresh tasks.** A worker is never given a task twice (the unique
  (task_id, worker_id) of assignments), which is also what keeps a retry honest: every task a
  worker has answered had its expected answer shown to them. So a retry is served from the
  tasks the worker has not answered yet, first and only; `fresh_tasks` in the progress says how
  many are left, and a requester sizes the project for the retries it allows.
- **No farming.** The expected answer is in no response but the holder's own submit of that
  task (accept, preview, the assignment lists and the progress never show it).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.training import repository
from services.tasks.training.repository import ProgressRow
from services.tasks.training.schemas import (
    MAX_EXPLANATION_CHARS,
    SubmittedAssignment,
    TrainingFeedback,
    TrainingProgressRead,
    TrainingRule,
    TrainingWorkerRead,
)
from shared.database import Db, Writable, WriteDb
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.pagination import Page, PageParams

MAX_REPORTED_TASKS = 100


class TrainingPassed(Conflict):
    code = "training_passed"


class TrainingRetryNotAllowed(Conflict):
    code = "retry_not_allowed"


class TrainingTaskWithoutGold(ValidationFailed):
    code = "training_task_without_gold"


class TrainingProjectNotFound(NotFound):
    code = "not_found"


# --------------------------------------------------------------------------- the project


async def project_errors(
    db: Db,
    *,
    requester_id: str,
    kind: str,
    training: TrainingRule | None,
    pay_model: str,
    reward_cents: int | None,
    min_hourly_rate_cents: int | None,
) -> list[dict[str, Any]]:
    """A training project needs its rule and one of the requester's own (non-system) types,
    and is paid per answer; only it may pay 0.00. Someone else's type and a missing one get the
    same answer (no existence leak)."""
    errors: list[dict[str, Any]] = []

    def bad(loc: list[str], msg: str) -> None:
        errors.append({"loc": ["body", *loc], "msg": msg})

    if kind == "training":
        if training is None:
            bad(["training"], "a training project needs training: {qualification_type_id, ...}")
        elif not await repository.owns_type(
            db, type_id=training.qualification_type_id, requester_id=requester_id
        ):
            bad(
                ["training", "qualification_type_id"],
                "no qualification type of yours has this id (system types cannot be granted)",
            )
        if pay_model != "per_assignment":
            bad(["pay_model"], "a training project is paid per answer (pay_model: per_assignment)")
        if min_hourly_rate_cents is not None:
            bad(["min_hourly_rate"], "a training project has no pay floor")
    else:
        if training is not None:
            bad(["training"], "training is for training projects (kind: training)")
        if reward_cents == 0:
            bad(["reward"], "reward must be at least 0.01 (only a training project may pay 0)")
    return errors


def project_columns(kind: str, training: TrainingRule | None) -> dict[str, Any]:
    if kind != "training" or training is None:
        return {"kind": "standard"}
    return {
        "kind": "training",
        "training_qualification_type_id": training.qualification_type_id,
        "min_training_answers": training.min_training_answers,
        "pass_accuracy": training.pass_accuracy,
    }


def rule_of(row: Any) -> TrainingRule | None:
    """The project's rule as the API shows it (None for a standard project)."""
    if row.kind != "training":
        return None
    return TrainingRule(
        qualification_type_id=row.training_qualification_type_id,
        min_training_answers=row.min_training_answers,
        pass_accuracy=row.pass_accuracy,
    )


async def check_publish(
    db: Db, *, project_id: str, kind: str, min_training_answers: int | None
) -> None:
    """A training project is published only when every task has a gold answer and an
    explanation (422 `training_task_without_gold` naming the tasks, at most 100), and with at
    least `min_training_answers` tasks (422 `training_too_few_tasks`): a worker answers each
    task once, so fewer could never decide an attempt."""
    if kind != "training":
        return
    incomplete = await repository.incomplete_tasks(
        db, project_id=project_id, limit=MAX_REPORTED_TASKS
    )
    if incomplete:
        errors = [
            {
                "loc": ["tasks", task.id, "gold_answer" if task.no_gold else "explanation"],
                "msg": "a training task needs a gold answer and an explanation",
            }
            for task in incomplete
        ]
        raise TrainingTaskWithoutGold(
            "Every task of a training project needs a gold answer and an explanation; "
            f"{len(incomplete)}{'+' if len(incomplete) == MAX_REPORTED_TASKS else ''} do not.",
            errors=errors,
        )
    tasks = await repository.task_count(db, project_id=project_id)
    if min_training_answers is not None and tasks < min_training_answers:
        raise ValidationFailed(
            f"A training project needs at least min_training_answers ({min_training_answers}) "
            f"tasks to decide an attempt; it has {tasks}.",
            code="training_too_few_tasks",
            errors=[{"loc": ["tasks"], "msg": f"{tasks} of at least {min_training_answers}"}],
        )


def upload_problems(
    *, kind: str, live: bool, tasks: list[Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Problems of uploaded tasks for this project: an explanation is text of at most 10,000
    characters (any project may carry one); a live training project takes only tasks with a
    gold answer and an explanation (a draft is checked at publish). Returns (problems, whether
    one is a missing gold answer or explanation)."""
    problems: list[dict[str, Any]] = []
    missing = False
    for task in tasks:
        explanation = task.explanation
        if explanation is not None and (
            not isinstance(explanation, str) or len(explanation) > MAX_EXPLANATION_CHARS
        ):
            problems.append(
                {
                    "loc": task.loc,
                    "msg": f"explanation: must be text of at most {MAX_EXPLANATION_CHARS} "
                    "characters",
                }
            )
            continue
        if kind == "training" and live:
            if task.gold_answer is None:
                problems.append({"loc": task.loc, "msg": "gold_answer: a training task needs one"})
                missing = True
            if explanation is None or not explanation.strip():
                problems.append({"loc": task.loc, "msg": "explanation: a training task needs one"})
                missing = True
    return problems, missing


# --------------------------------------------------------------------------- accept


async def admit(db: Writable, *, project_id: str, worker_id: str) -> None:
    """Before a training claim: starts the worker's first attempt, or the next one once a
    failed attempt's retry time has come. A worker who passed is done (409
    `training_passed`); one who failed waits for `retry_at` (409 `retry_not_allowed` with
    `retry_after` and `retry_allowed_at`; both null when the type allows no retry)."""
    admission = await repository.admit(db, project_id=project_id, worker_id=worker_id)
    if admission is None or admission.status == "in_progress":
        return
    if admission.status == "passed":
        raise TrainingPassed("You passed this training; its qualification is yours.")
    if admission.retry_at is None:
        raise TrainingRetryNotAllowed(
            "You did not pass this training, and its qualification allows one attempt only.",
            extra={"retry_after": None, "retry_allowed_at": None},
        )
    wait = max(1, math.ceil((admission.retry_at - admission.now).total_seconds()))
    raise TrainingRetryNotAllowed(
        f"You did not pass this training; you may try again in {wait} seconds.",
        extra={"retry_after": wait, "retry_allowed_at": _rfc3339(admission.retry_at)},
        headers={"Retry-After": str(wait)},
    )


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- submit


async def after_submit(
    db: WriteDb,
    *,
    submitted: AssignmentRead,
    requester_id: str,
    correct: bool,
    gold_answer: Any,
    explanation: str | None,
) -> SubmittedAssignment:
    """In the submit's transaction, right after the answer was written: approve it (the
    lifecycle's approval), count it in the worker's attempt, and answer with the feedback."""
    # Imported here: the lifecycle calls into this module (accept, submit), and the projects
    # service imports it for its rules, so a module-level import would make a cycle.
    from services.tasks.lifecycle.approve import approve_one
    from services.tasks.lifecycle.assignment import assignment_fields

    approved = await approve_one(
        db, requester_id=requester_id, assignment_id=submitted.id, feedback=None
    )
    assert approved is not None  # submitted in this transaction, the row still locked by it
    await repository.drop_zero_payout(db, assignment_id=submitted.id)
    # Not counted (None) when the attempt was decided already or started after this accept.
    await repository.count_answer(
        db,
        project_id=submitted.project_id,
        worker_id=submitted.worker_id,
        accepted_at=submitted.accepted_at,
        correct=correct,
    )
    row = await repository.progress(
        db, project_id=submitted.project_id, worker_id=submitted.worker_id
    )
    assert row is not None  # the project of an assignment just submitted
    progress = progress_read(row)
    return SubmittedAssignment(
        **assignment_fields(approved),
        training=TrainingFeedback(
            correct=correct,
            expected_answer=gold_answer,
            explanation=explanation,
            progress=progress,
        ),
    )


# --------------------------------------------------------------------------- progress


def progress_read(row: ProgressRow) -> TrainingProgressRead:
    answered = row.answered or 0
    correct = row.correct or 0
    return TrainingProgressRead(
        project_id=row.id,
        qualification_type_id=row.qualification_type_id or "",
        min_training_answers=row.min_training_answers or 0,
        pass_accuracy=row.pass_accuracy or 0,
        status=row.progress_status or "not_started",  # type: ignore[arg-type]
        attempt=row.attempt or 0,
        answers=answered,
        correct=correct,
        accuracy=None if answered == 0 else correct * 100 // answered,
        started_at=row.started_at,
        decided_at=row.decided_at,
        retry_at=row.retry_at,
        granted_value=row.granted_value,
        fresh_tasks=row.fresh_tasks,
    )


async def get_progress(db: Db, *, project_id: str, worker_id: str) -> TrainingProgressRead:
    """The worker's progress in a training project they may see: 404 for a standard project,
    a draft, or a requester who blocked the worker (as discovery hides it)."""
    row = await repository.progress(db, project_id=project_id, worker_id=worker_id)
    if row is None or row.kind != "training" or row.status == "draft" or row.blocked:
        raise TrainingProjectNotFound("Training project not found.")
    return progress_read(row)


async def list_workers(
    db: Db, *, requester_id: str, project_id: str, status: str | None, page: PageParams
) -> Page[TrainingWorkerRead]:
    """The owner's view of its training project: each worker's current attempt and outcome.
    404 for someone else's project, a missing one, or a standard one."""
    from services.tasks.projects.service import load_project

    project = await load_project(db, requester_id=requester_id, project_id=project_id)
    if project.kind != "training":
        raise TrainingProjectNotFound("Training project not found.")
    rows = await repository.list_workers(
        db, project_id=project_id, status=status, before_worker_id=page.before, limit=page.fetch
    )
    kept, next_cursor = page.page(rows, lambda r: [r.worker_id])
    return Page(
        items=[
            TrainingWorkerRead(
                worker_id=r.worker_id,
                status=r.status,  # type: ignore[arg-type]
                attempt=r.attempt,
                answers=r.answered,
                correct=r.correct,
                accuracy=None if r.answered == 0 else r.correct * 100 // r.answered,
                started_at=r.started_at,
                decided_at=r.decided_at,
                retry_at=r.retry_at,
                granted_value=r.granted_value,
            )
            for r in kept
        ],
        next_cursor=next_cursor,
    )
