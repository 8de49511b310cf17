"""UpdateExpirationForHIT, CreateAdditionalAssignmentsForHIT, DeleteHIT and NotifyWorkers.

Each is the native operation of the same meaning, run in-process on the tasks service's own
service layer (services/tasks/task_changes) or, for messages, over HTTP on the workers service
that owns them; the door only translates ids, parameters and errors (docs/mturk.md, "Changing
HITs" and "NotifyWorkers"):

- UpdateExpirationForHIT: `PATCH /v1/tasks/{id}` `{expires_at}`; `ExpireAt` now, 0 or in the
  past expires the HIT at once (its unused slots' money goes back once).
- CreateAdditionalAssignmentsForHIT: `POST /v1/tasks/{id}/additional-assignments`; the money
  of the new assignments is reserved at once (MTurk's insufficient-funds error otherwise, and
  nothing changes). `UniqueRequestToken`: the second use within 24 hours is MTurk's duplicate
  error; the reservation's payments key derives from the token (or, without one, from the
  client's invocation id), so a retry after a lost commit holds the money once.
- DeleteHIT: `POST /v1/tasks/{id}/dispose`, refused unless the HIT is Reviewable with every
  submitted assignment approved or rejected; a disposed HIT leaves ListHITs.
- NotifyWorkers: `POST /internal/requesters/{id}/worker-messages` on the workers service (the
  native `POST /v1/workers/messages`); the workers it does not reach come back as
  NotifyWorkersFailureStatuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.tasks.mturk import idempotency
from services.tasks.mturk.errors import (
    PARAMETER_VALIDATION,
    MTurkRequestError,
    does_not_exist,
)
from services.tasks.mturk.ids import native_id, worker_id_from_mturk, worker_id_to_mturk
from services.tasks.mturk.mapping import FEE_TIER_ASSIGNMENTS
from services.tasks.mturk.operations.hits import insufficient_funds, payments_client
from services.tasks.mturk.registry import MTurkCall, mturk_operation
from services.tasks.task_changes import service as task_changes
from services.tasks.task_changes.schemas import MAX_ASSIGNMENTS_PER_TASK
from shared.errors import AppError
from shared.models.messages import MAX_BODY_CHARS, MAX_SUBJECT_CHARS

INVALID_HIT_STATE = "AWS.MechanicalTurk.InvalidHITState"
INVALID_MAXIMUM_ASSIGNMENTS_INCREASE = "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease"
MAX_NOTIFY_WORKERS = 100
EXTEND_TOKEN_SCOPE = "ExtendHIT"


def _status_phrase(call: MTurkCall, allowed: str) -> str:
    """MTurk's words for a call the object's state forbids, which clients match on: "This
    operation can be called with a status of: <states> (<epoch milliseconds>)"."""
    return (
        f"This operation can be called with a status of: {allowed} "
        f"({int(call.now.timestamp() * 1000)})"
    )


@contextmanager
def _hit_errors(call: MTurkCall, hit_id: str, *, allowed: str) -> Iterator[None]:
    """The native refusals in MTurk's terms: a missing (or someone else's) task is MTurk's
    HITDoesNotExist, 402 its insufficient-funds error, a state that forbids the change
    InvalidHITState (the native reason, then MTurk's phrase), bad values ParameterOutOfRange.
    Anything else (503) is left to the protocol layer."""
    try:
        yield
    except AppError as exc:
        if exc.status == 404:
            raise does_not_exist("HIT", hit_id) from exc
        if exc.status == 402:
            raise insufficient_funds() from exc
        if exc.status == 409:
            raise MTurkRequestError(
                f"{exc.detail} {_status_phrase(call, allowed)}", INVALID_HIT_STATE
            ) from exc
        if exc.status == 422:
            raise MTurkRequestError(exc.detail, PARAMETER_VALIDATION) from exc
        raise


def _wake_outbox(call: MTurkCall) -> None:
    """After the commit: a release the change wrote leaves now, not at the deliverer's next
    poll (the native routes do the same, services/tasks/outbox)."""
    deliverer = getattr(call.request.app.state, "outbox_deliverer", None)
    if deliverer is not None:
        deliverer.wake()


@mturk_operation("UpdateExpirationForHIT")
async def update_expiration_for_hit(call: MTurkCall) -> dict[str, Any]:
    hit_id = native_id(call.params["HITId"], "HITId")
    expire_at = call.params["ExpireAt"]  # a timezone-aware datetime (validation.py)
    async with call.database.transaction() as db:
        with _hit_errors(call, hit_id, allowed="Assignable,Unassignable,Reviewable"):
            await task_changes.set_expiry(
                db,
                payments=payments_client(call),
                requester_id=call.requester_id,
                task_id=hit_id,
                expires_at=expire_at,
            )
    _wake_outbox(call)
    return {}


@mturk_operation("CreateAdditionalAssignmentsForHIT")
async def create_additional_assignments_for_hit(call: MTurkCall) -> dict[str, Any]:
    hit_id = native_id(call.params["HITId"], "HITId")
    count = call.params["NumberOfAdditionalAssignments"]
    if count < 1:
        raise MTurkRequestError(
            f"NumberOfAdditionalAssignments must be at least 1; got {count}.",
            PARAMETER_VALIDATION,
        )
    token = call.params.get("UniqueRequestToken")
    async with call.database.transaction() as db:
        with _hit_errors(call, hit_id, allowed="Assignable,Unassignable,Reviewable"):
            # Locked as the change below locks it, so concurrent extensions of one HIT decide
            # on the count one after the other.
            current = await task_changes.lock_for_change(
                db, requester_id=call.requester_id, task_id=hit_id
            )
        total = current.max_assignments + count
        if current.max_assignments < FEE_TIER_ASSIGNMENTS <= total:
            # MTurk's rule (its fee rises at 10 assignments): kept so scripts see what they
            # would see there. Natively a task may grow past 10 (the fee is the project's).
            raise MTurkRequestError(
                f"HITs created with fewer than {FEE_TIER_ASSIGNMENTS} assignments cannot be "
                f"extended to have {FEE_TIER_ASSIGNMENTS} or more assignments. This HIT has "
                f"{current.max_assignments}; {count} more would make {total}.",
                INVALID_MAXIMUM_ASSIGNMENTS_INCREASE,
            )
        if total > MAX_ASSIGNMENTS_PER_TASK:
            raise MTurkRequestError(
                f"A HIT can have at most {MAX_ASSIGNMENTS_PER_TASK} assignments here; this "
                f"one has {current.max_assignments}, so at most "
                f"{MAX_ASSIGNMENTS_PER_TASK - current.max_assignments} more.",
                PARAMETER_VALIDATION,
            )
        await idempotency.claim_request_token(
            db,
            call,
            scope=EXTEND_TOKEN_SCOPE,
            token=token,
            resource_id=hit_id,
            duplicate_message=(
                "The extend HIT request with this unique request token was already made "
                f"(HIT {hit_id}); the HIT was not extended again."
            ),
        )
        seed = f"token:{token}" if token else call.idempotency_key(f"extend:{hit_id}")
        with _hit_errors(call, hit_id, allowed="Assignable,Unassignable,Reviewable"):
            await task_changes.add_assignments(
                db,
                payments=payments_client(call),
                requester_id=call.requester_id,
                task_id=hit_id,
                count=count,
                reservation_key=task_changes.reservation_suffix(seed),
            )
    _wake_outbox(call)
    return {}


@mturk_operation("DeleteHIT")
async def delete_hit(call: MTurkCall) -> dict[str, Any]:
    hit_id = native_id(call.params["HITId"], "HITId")
    async with call.database.transaction() as db:
        with _hit_errors(call, hit_id, allowed="Reviewable"):
            current = await task_changes.lock_for_change(
                db, requester_id=call.requester_id, task_id=hit_id
            )
            if current.disposed_at is not None:
                # Natively disposing again is a no-op; MTurk refuses a disposed HIT.
                raise MTurkRequestError(
                    f"HIT {hit_id} was already deleted. {_status_phrase(call, 'Reviewable')}",
                    INVALID_HIT_STATE,
                )
            await task_changes.dispose(db, requester_id=call.requester_id, task_id=hit_id)
    _wake_outbox(call)
    return {}


@mturk_operation("NotifyWorkers")
async def notify_workers(call: MTurkCall) -> dict[str, Any]:
    params = call.params
    worker_ids: list[str] = params["WorkerIds"]
    subject: str = params["Subject"]
    text: str = params["MessageText"]
    if not 1 <= len(worker_ids) <= MAX_NOTIFY_WORKERS:
        raise MTurkRequestError(
            f"WorkerIds must list 1 to {MAX_NOTIFY_WORKERS} workers; got {len(worker_ids)}.",
            PARAMETER_VALIDATION,
        )
    for name, value, limit in (
        ("Subject", subject, MAX_SUBJECT_CHARS),
        ("MessageText", text, MAX_BODY_CHARS),
    ):
        if not value.strip() or len(value) > limit:
            raise MTurkRequestError(
                f"{name} must be 1 to {limit} characters and not blank; got {len(value)}.",
                PARAMETER_VALIDATION,
            )
    native_ids = [worker_id_from_mturk(w) for w in worker_ids]
    workers = call.request.app.state.peers["workers"]
    sent = await workers.post(
        f"/internal/requesters/{call.requester_id}/worker-messages",
        json={"worker_ids": native_ids, "subject": subject, "body": text},
    )
    return {
        "NotifyWorkersFailureStatuses": [
            {
                "NotifyWorkersFailureCode": "HardFailure",
                "NotifyWorkersFailureMessage": failure["message"],
                "WorkerId": worker_id_to_mturk(failure["worker_id"]),
            }
            for failure in sent["failures"]
        ]
    }
