"""Qualification attempts: start, submit, owner review.

Rules (contract + issue 3):
- A type with a test starts a timed attempt (deadline = start + duration_seconds); with an answer
  key the submit is scored at once and granted, without one it waits for the owner.
- An auto_grant type grants auto_grant_value on request; a type with neither test nor auto_grant
  records a request for the owner to accept or reject.
- Without retry_delay_seconds a worker gets exactly one attempt (holding the qualification already
  counts as having had it); with it, the next attempt may start once `retry_delay_seconds` have
  passed since the previous attempt started (MTurk's RetryDelayInSeconds), and never while one is
  live (started) or pending review.
- At most one live attempt per worker and type: an advisory lock orders concurrent starts and the
  partial unique index uq_qualification_attempts_live makes a second live row impossible.
- Every refusal is raised before anything is written, so a 4xx leaves the database unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from services.workers.attempts import repository
from services.workers.attempts.repository import AttemptRow
from services.workers.attempts.schemas import (
    AttemptRead,
    AttemptStarted,
    QualificationRequestRead,
    RequestStatus,
    SubmitResult,
)
from services.workers.attempts.scoring import answer_errors, score
from services.workers.grants import repository as grants_repository
from services.workers.grants.service import grant
from services.workers.levels import service as levels
from services.workers.qualification_types.repository import QualificationTypeRow
from services.workers.qualification_types.schemas import AnswerKey, Question
from services.workers.qualification_types.service import (
    SystemQualificationType,
    get_owned_type,
    get_visible_type,
)
from shared.database import Db, WriteDb
from shared.errors import Conflict, InvalidState, NotFound, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, PageParams


class RetryNotAllowed(Conflict):
    code = "retry_not_allowed"


class AttemptInProgress(Conflict):
    code = "attempt_in_progress"


class RequestPending(Conflict):
    code = "request_pending"


class AttemptExpired(Conflict):
    code = "attempt_expired"


class AttemptAlreadySubmitted(InvalidState):
    code = "attempt_already_submitted"


class AttemptNotFound(NotFound):
    code = "attempt_not_found"


class RequestNotFound(NotFound):
    code = "qualification_request_not_found"


class RequestNotPending(InvalidState):
    code = "request_not_pending"


class InvalidAnswers(ValidationFailed):
    code = "invalid_answers"


def _rfc3339(moment: datetime) -> str:
    """Problem bodies are built by hand: match the `...Z` form pydantic gives every timestamp."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _questions(row: AttemptRow) -> list[Question]:
    return [Question.model_validate(q) for q in row.questions or []]


def _effective_status(row: AttemptRow, now: datetime) -> str:
    """A started attempt past its deadline is expired even before anyone marks it so."""
    if row.status == "started" and row.deadline is not None and row.deadline <= now:
        return "expired"
    return row.status


def _attempt_read(row: AttemptRow, now: datetime) -> AttemptRead:
    return AttemptRead(
        attempt_id=row.id,
        qualification_type_id=row.qualification_type_id,
        status=_effective_status(row, now),  # type: ignore[arg-type]
        questions=_questions(row),
        deadline=row.deadline,
        started_at=row.started_at,
        submitted_at=row.submitted_at,
        reviewed_at=row.reviewed_at,
        score=row.value,
        value=row.value,
        reason=row.reason,
    )


def _request_read(row: AttemptRow, now: datetime) -> QualificationRequestRead:
    """The row's own fields (never its answer key: the model has no such field); a request's
    id is its attempt's."""
    return QualificationRequestRead.model_validate(
        {**asdict(row), "attempt_id": row.id, "status": _effective_status(row, now)}
    )


async def _check_retake(
    db: Db, *, type_row: QualificationTypeRow, worker_id: str, now: datetime
) -> None:
    previous = await repository.last_attempt(db, type_id=type_row.id, worker_id=worker_id)
    if previous is not None and _effective_status(previous, now) == "started":
        raise AttemptInProgress(
            "You already have an attempt in progress for this qualification.",
            extra={"attempt_id": previous.id, "deadline": _rfc3339(previous.deadline)},
        )
    if previous is not None and previous.status == "pending":
        raise RequestPending(
            "Your previous request for this qualification is waiting for review.",
            extra={"attempt_id": previous.id},
        )
    delay = type_row.retry_delay_seconds
    if delay is None:
        held = await grants_repository.get_grant(db, worker_id=worker_id, type_id=type_row.id)
        if previous is not None or (held is not None and held.status == "granted"):
            raise RetryNotAllowed(
                "This qualification allows one attempt only.",
                extra={"retry_after": None, "retry_allowed_at": None},
            )
        return
    if previous is None:
        return
    allowed_at = previous.started_at + timedelta(seconds=delay)
    if now < allowed_at:
        wait = math.ceil((allowed_at - now).total_seconds())
        raise RetryNotAllowed(
            f"You may retake this qualification in {wait} seconds.",
            extra={"retry_after": wait, "retry_allowed_at": _rfc3339(allowed_at)},
            headers={"Retry-After": str(wait)},
        )


async def start_attempt(
    db: WriteDb, *, worker_id: str, type_id: str, now: datetime
) -> AttemptStarted:
    type_row = await get_visible_type(db, type_id=type_id, caller_id=worker_id)
    if type_row.is_system:
        raise SystemQualificationType("System qualifications are computed, not requested.")
    await repository.lock_worker_type(db, type_id=type_id, worker_id=worker_id)
    await _check_retake(db, type_row=type_row, worker_id=worker_id, now=now)
    # Writes start here: every refusal above left the database as it was.
    await repository.expire_overdue(db, type_id=type_id, worker_id=worker_id, now=now)
    values: dict[str, Any] = {
        "id": new_id(),
        "qualification_type_id": type_id,
        "worker_id": worker_id,
        "started_at": now,
    }
    if type_row.auto_grant:
        values |= {
            "status": "granted",
            "value": type_row.auto_grant_value,
            "submitted_at": now,
            "reviewed_at": now,
        }
    elif type_row.test is not None:
        test = type_row.test
        values |= {
            "status": "started",
            "questions": test["questions"],
            "answer_key": type_row.answer_key,
            "deadline": now + timedelta(seconds=int(test["duration_seconds"])),
        }
    else:
        values |= {"status": "pending", "questions": [], "submitted_at": now}
    row = await repository.insert_attempt(db, values)
    if row is None:
        raise AttemptInProgress("You already have an attempt in progress for this qualification.")
    if type_row.auto_grant:
        await grant(
            db, worker_id=worker_id, type_id=type_id, value=type_row.auto_grant_value, now=now
        )
    return AttemptStarted(
        attempt_id=row.id,
        qualification_type_id=type_id,
        status=row.status,
        questions=_questions(row),
        deadline=row.deadline,
        started_at=row.started_at,
        value=row.value,
    )


async def submit_attempt(
    db: WriteDb,
    *,
    worker_id: str,
    attempt_id: str,
    answers: dict[str, Any],
    now: datetime,
) -> SubmitResult:
    # FOR UPDATE: a concurrent second submit waits here, then sees the first one's result.
    row = await repository.get_worker_attempt(
        db, attempt_id=attempt_id, worker_id=worker_id, for_update=True
    )
    if row is None:
        raise AttemptNotFound("Attempt not found.")
    if row.status == "expired" or _effective_status(row, now) == "expired":
        raise AttemptExpired("The deadline of this attempt has passed.")
    if row.status != "started":
        raise AttemptAlreadySubmitted("This attempt was already submitted.")
    questions = _questions(row)
    errors = answer_errors(questions, answers)
    if errors:
        detail = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors[:5])
        raise InvalidAnswers(detail, errors=errors)
    if row.answer_key is None:
        await repository.update_attempt(
            db, row.id, {"status": "pending", "answers": answers, "submitted_at": now}
        )
        return SubmitResult(
            attempt_id=row.id,
            status="pending",
            score=None,
            value=None,
            points=None,
            max_points=None,
        )
    points, max_points, value = score(questions, AnswerKey.model_validate(row.answer_key), answers)
    await repository.update_attempt(
        db,
        row.id,
        {
            "status": "granted",
            "answers": answers,
            "points": points,
            "max_points": max_points,
            "value": value,
            "submitted_at": now,
            "reviewed_at": now,
        },
    )
    await grant(db, worker_id=worker_id, type_id=row.qualification_type_id, value=value, now=now)
    await levels.on_test_passed(
        db,
        worker_id=worker_id,
        qualification_type_id=row.qualification_type_id,
        value=value,
        via="test",
        now=now,
    )
    return SubmitResult(
        attempt_id=row.id,
        status="granted",
        score=value,
        value=value,
        points=points,
        max_points=max_points,
    )


async def get_attempt(db: Db, *, worker_id: str, attempt_id: str, now: datetime) -> AttemptRead:
    row = await repository.get_worker_attempt(db, attempt_id=attempt_id, worker_id=worker_id)
    if row is None:
        raise AttemptNotFound("Attempt not found.")
    return _attempt_read(row, now)


async def list_requests(
    db: Db,
    *,
    owner_id: str,
    type_id: str,
    status: RequestStatus,
    page: PageParams,
    now: datetime,
) -> Page[QualificationRequestRead]:
    await get_owned_type(db, type_id=type_id, owner_id=owner_id)
    rows = await repository.list_requests(
        db, type_id=type_id, status=status, before_id=page.before, limit=page.fetch
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[_request_read(r, now) for r in items], next_cursor=next_cursor)


async def get_request(
    db: Db, *, owner_id: str, request_id: str, now: datetime
) -> QualificationRequestRead:
    row = await repository.get_owner_request(db, request_id=request_id, owner_id=owner_id)
    if row is None:
        raise RequestNotFound("Qualification request not found.")
    return _request_read(row, now)


async def _pending_request(db: WriteDb, *, owner_id: str, request_id: str) -> AttemptRow:
    row = await repository.get_owner_request(
        db, request_id=request_id, owner_id=owner_id, for_update=True
    )
    if row is None:
        raise RequestNotFound("Qualification request not found.")
    if row.status != "pending":
        raise RequestNotPending(f"This request is {row.status}, not pending.")
    return row


async def accept_request(
    db: WriteDb, *, owner_id: str, request_id: str, value: int, now: datetime
) -> QualificationRequestRead:
    row = await _pending_request(db, owner_id=owner_id, request_id=request_id)
    updated = await repository.update_attempt(
        db, row.id, {"status": "granted", "value": value, "reviewed_at": now}
    )
    await grant(
        db,
        worker_id=row.worker_id,
        type_id=row.qualification_type_id,
        value=value,
        now=now,
    )
    if row.questions:  # a test reviewed by its owner (not a plain request)
        await levels.on_test_passed(
            db,
            worker_id=row.worker_id,
            qualification_type_id=row.qualification_type_id,
            value=value,
            via="test",
            now=now,
        )
    return _request_read(updated, now)


async def reject_request(
    db: WriteDb, *, owner_id: str, request_id: str, reason: str, now: datetime
) -> QualificationRequestRead:
    row = await _pending_request(db, owner_id=owner_id, request_id=request_id)
    updated = await repository.update_attempt(
        db, row.id, {"status": "rejected", "reason": reason, "reviewed_at": now}
    )
    return _request_read(updated, now)
