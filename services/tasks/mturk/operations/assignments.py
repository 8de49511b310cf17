"""Assignments: ListAssignmentsForHIT, GetAssignment, ApproveAssignment (with
OverrideRejection), RejectAssignment, SendBonus.

Review runs the native lifecycle (services/tasks/lifecycle) in-process, on the assignment row
locked first so the MTurk refusals (approving an approved assignment is an error on MTurk, a
no-op natively) are decided on the state the transition sees: approve's one statement
(APPROVE_ONE_SQL, payout through the outbox), override (paid now from the available balance),
reject (the slot reopens). A bonus is the payments service's bonus (`POST /internal/bonuses`),
keyed so it is paid exactly once per UniqueRequestToken, or per call (the client's invocation
id, the same on botocore's retries) without one.
"""

from __future__ import annotations

from typing import Any

from services.tasks.lifecycle import approve as approve_
from services.tasks.lifecycle import override as override_
from services.tasks.lifecycle import reject as reject_
from services.tasks.lifecycle.assignment import AssignmentNotFound
from services.tasks.lifecycle.decisions import ReviewRow, locked_one
from services.tasks.mturk import hits_repository as repo
from services.tasks.mturk import idempotency, mapping
from services.tasks.mturk.answers import render_answer
from services.tasks.mturk.errors import MTurkRequestError, does_not_exist
from services.tasks.mturk.ids import native_id, worker_id_from_mturk
from services.tasks.mturk.mapping import AssignmentView
from services.tasks.mturk.operations.hits import hit_output, insufficient_funds, payments_client
from services.tasks.mturk.pagination import page_request, page_result
from services.tasks.mturk.questions import ParsedQuestion, parse_question
from services.tasks.mturk.registry import MTurkCall, mturk_operation
from shared.database import WriteDb
from shared.errors import AppError

ASSIGNMENT_DOES_NOT_EXIST = "AWS.MechanicalTurk.AssignmentDoesNotExist"
INVALID_ASSIGNMENT_STATE = "AWS.MechanicalTurk.InvalidAssignmentState"
MAX_BONUS_CENTS = 10_000_000  # 100,000.00: the native bonus' ceiling (shared/money.py)
MAX_BONUS_REASON_CHARS = 2_000  # the native bonus reason's


def assignment_does_not_exist(assignment_id: str) -> MTurkRequestError:
    return MTurkRequestError(
        f"Assignment {assignment_id} does not exist.", ASSIGNMENT_DOES_NOT_EXIST
    )


def invalid_state(*allowed: str) -> MTurkRequestError:
    """MTurk's wording for a call the assignment's status forbids, e.g. approving an approved
    assignment: "This operation can be called with a status of: Submitted"."""
    return MTurkRequestError(
        f"This operation can be called with a status of: {','.join(allowed)}",
        INVALID_ASSIGNMENT_STATE,
    )


def _question(task_input: dict[str, Any] | None) -> ParsedQuestion | None:
    xml = mapping.question_of(task_input or {})
    if xml is None:
        return None
    try:
        return parse_question(xml)
    except MTurkRequestError:  # stored before a parser change: render in stored order
        return None


def assignment_output(row: repo.AssignmentRow, question: ParsedQuestion | None) -> dict[str, Any]:
    return mapping.assignment_shape(
        AssignmentView(
            id=row.id,
            task_id=row.task_id,
            worker_id=row.worker_id,
            status=row.status,
            answer_xml=None if row.answer is None else render_answer(row.answer, question),
            feedback=row.feedback,
            accepted_at=row.accepted_at,
            deadline=row.deadline,
            submitted_at=row.submitted_at,
            reviewed_at=row.reviewed_at,
            auto_approve_at=row.auto_approve_at,
        )
    )


# --------------------------------------------------------------------------- reads


@mturk_operation("ListAssignmentsForHIT")
async def list_assignments_for_hit(call: MTurkCall) -> dict[str, Any]:
    hit_id = native_id(call.params["HITId"], "HITId")
    wanted = call.params.get("AssignmentStatuses") or list(mapping.ASSIGNMENT_STATUSES_BACK)
    statuses = sorted({mapping.ASSIGNMENT_STATUSES_BACK[s] for s in wanted})
    page = page_request(call)
    after = page.after if isinstance(page.after, str) else None
    async with call.database.read() as db:
        task_input = await repo.task_input(db, requester_id=call.requester_id, task_id=hit_id)
        if task_input is None:
            raise does_not_exist("HIT", hit_id)
        rows = await repo.list_assignments(
            db,
            requester_id=call.requester_id,
            task_id=hit_id,
            statuses=statuses,
            after_id=after,
            limit=page.limit + 1,
        )
    question = _question(task_input)
    return page_result(
        call,
        "Assignments",
        rows,
        page,
        position=lambda r: r.id,
        render=lambda r: assignment_output(r, question),
    )


@mturk_operation("GetAssignment")
async def get_assignment(call: MTurkCall) -> dict[str, Any]:
    assignment_id = native_id(call.params["AssignmentId"], "AssignmentId")
    async with call.database.read() as db:
        row = await repo.get_assignment(
            db, requester_id=call.requester_id, assignment_id=assignment_id
        )
        if row is None:
            raise assignment_does_not_exist(assignment_id)
        if row.status not in mapping.ASSIGNMENT_STATUSES:
            # Being worked on, returned or abandoned: not a result yet (MTurk's answer).
            raise invalid_state("Reviewable", "Approved", "Rejected")
        hit = await repo.get_hit(db, requester_id=call.requester_id, task_id=row.task_id)
    assert hit is not None  # the assignment's task is the requester's
    return {
        "Assignment": assignment_output(row, _question(hit.input)),
        "HIT": hit_output(call, hit),
    }


# --------------------------------------------------------------------------- review


def _feedback(call: MTurkCall) -> str | None:
    feedback = call.params.get("RequesterFeedback")
    if feedback is None:
        return None
    if len(feedback) > mapping.MAX_FEEDBACK_CHARS:
        raise mapping.out_of_range(
            f"RequesterFeedback must be at most {mapping.MAX_FEEDBACK_CHARS} characters long."
        )
    return feedback


async def _locked(call: MTurkCall, db: WriteDb, assignment_id: str) -> ReviewRow:
    try:
        return await locked_one(db, requester_id=call.requester_id, assignment_id=assignment_id)
    except AssignmentNotFound as exc:
        raise assignment_does_not_exist(assignment_id) from exc


def _wake_outbox(call: MTurkCall) -> None:
    """An approval's payout is in the outbox, committed: ask this process's deliverer for a
    pass now instead of at its next poll (what the native approve route does after its
    response)."""
    deliverer = getattr(call.request.app.state, "outbox_deliverer", None)
    if deliverer is not None:
        deliverer.wake()


@mturk_operation("ApproveAssignment")
async def approve_assignment(call: MTurkCall) -> dict[str, Any]:
    assignment_id = native_id(call.params["AssignmentId"], "AssignmentId")
    feedback = _feedback(call)
    override = bool(call.params.get("OverrideRejection"))
    async with call.database.transaction() as db:
        current = await _locked(call, db, assignment_id)
        if current.status == "submitted":
            approved = await approve_.approve_one(
                db, requester_id=call.requester_id, assignment_id=assignment_id, feedback=feedback
            )
            assert approved is not None  # the locked row is submitted
        elif current.status == "rejected" and override:
            if not current.overridable:
                raise MTurkRequestError(
                    "A rejected assignment can be approved only within 30 days of its submission.",
                    INVALID_ASSIGNMENT_STATE,
                )
            try:
                await override_.override(
                    db, payments=payments_client(call), current=current, feedback=feedback
                )
            except AppError as exc:
                if exc.status == 402:
                    raise insufficient_funds() from exc
                raise
        elif override:
            raise invalid_state("Submitted", "Rejected")
        else:
            raise invalid_state("Submitted")
    _wake_outbox(call)
    return {}


@mturk_operation("RejectAssignment")
async def reject_assignment(call: MTurkCall) -> dict[str, Any]:
    assignment_id = native_id(call.params["AssignmentId"], "AssignmentId")
    feedback = _feedback(call) or ""
    async with call.database.transaction() as db:
        current = await _locked(call, db, assignment_id)
        if current.status != "submitted":
            raise invalid_state("Submitted")
        await reject_.reject(
            db,
            requester_id=call.requester_id,
            assignment_id=assignment_id,
            feedback=feedback,
            cap=reject_.RejectionCap.at(
                call.now, call.settings.rejections_counted_per_requester_per_day
            ),
        )
    _wake_outbox(call)  # a rejection of an expired HIT's assignment releases its slot's money
    return {}


# --------------------------------------------------------------------------- bonuses


def _bonus_key(call: MTurkCall) -> str:
    """Payments acts once per key: per UniqueRequestToken when there is one (MTurk's promise:
    one bonus per token), else per call (the invocation id botocore repeats on its retries)."""
    token = call.params.get("UniqueRequestToken")
    if token:
        return f"mturk:bonus:{call.requester_id}:{token}"
    return call.idempotency_key("SendBonus")


@mturk_operation("SendBonus")
async def send_bonus(call: MTurkCall) -> dict[str, Any]:
    params = call.params
    worker_id = worker_id_from_mturk(params["WorkerId"])
    assignment_id = native_id(params["AssignmentId"], "AssignmentId")
    amount = mapping.cents_from_amount(params["BonusAmount"], "BonusAmount")
    if not 1 <= amount <= MAX_BONUS_CENTS:
        raise mapping.out_of_range(
            f"BonusAmount must be between 0.01 and {mapping.amount_from_cents(MAX_BONUS_CENTS)}."
        )
    reason = params["Reason"].strip()
    if not reason:
        raise mapping.out_of_range("Reason must not be empty.")
    if len(reason) > MAX_BONUS_REASON_CHARS:
        raise mapping.out_of_range(
            f"Reason must be at most {MAX_BONUS_REASON_CHARS} characters long."
        )
    async with call.database.transaction() as db:
        await idempotency.claim_request_token(
            db,
            call,
            scope="Bonus",
            token=params.get("UniqueRequestToken"),
            duplicate_message="A bonus was already paid with this UniqueRequestToken "
            f"({params.get('UniqueRequestToken')}); no bonus was paid.",
        )
        row = await repo.get_assignment(
            db, requester_id=call.requester_id, assignment_id=assignment_id
        )
        if row is None:
            raise assignment_does_not_exist(assignment_id)
        if row.worker_id != worker_id:
            raise MTurkRequestError(
                f"Worker {params['WorkerId']} did not work on assignment {assignment_id}.",
                mapping.PARAMETER_OUT_OF_RANGE,
            )
        if row.status not in mapping.ASSIGNMENT_STATUSES:
            raise invalid_state("Submitted", "Approved", "Rejected")
        try:
            # Last step: the token's claim commits only if payments paid (or had paid: the
            # key replays, it never pays twice).
            await payments_client(call).post(
                "/internal/bonuses",
                json={
                    "key": _bonus_key(call),
                    "requester_id": call.requester_id,
                    "assignment_id": assignment_id,
                    "amount_cents": amount,
                    "reason": reason,
                },
            )
        except AppError as exc:
            if exc.status == 402:
                raise insufficient_funds() from exc
            raise
    return {}
