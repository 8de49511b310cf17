"""HIT types and HITs: CreateHITType, CreateHIT, CreateHITWithHITType, GetHIT, ListHITs.

A HIT type is a project of task type `mturk_question` (services/tasks/mturk/mapping.py), found
by its properties or created and published at once (publishing an empty project reserves
nothing). A HIT is one task uploaded into it through the native upload
(services/tasks/tasks/service.add_tasks): its slots' reward + fee are reserved from the
requester's available balance as for any task added to a live project, in the same
transaction, so a refusal (402) leaves neither the HIT nor a new HIT type behind.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from services.tasks.answers import QUESTION_TASK_TYPE
from services.tasks.mturk import hits_repository as repo
from services.tasks.mturk import idempotency, mapping
from services.tasks.mturk.errors import MTurkRequestError, does_not_exist
from services.tasks.mturk.ids import native_id, to_mturk
from services.tasks.mturk.mapping import HitTypeProperties, HitView
from services.tasks.mturk.pagination import page_request, page_result
from services.tasks.mturk.questions import parse_question
from services.tasks.mturk.registry import MTurkCall, mturk_operation
from services.tasks.projects import repository as projects_repository
from services.tasks.projects import service as projects
from services.tasks.projects.schemas import ProjectCreate
from services.tasks.tasks import service as tasks
from shared.database import WriteDb
from shared.errors import AppError
from shared.http import InternalClient
from shared.jsonutil import dumps

MTURK_TASK_TYPE = QUESTION_TASK_TYPE  # "mturk_question": the input carries the question XML
INSUFFICIENT_FUNDS = "AWS.MechanicalTurk.InsufficientFunds"
HIT_TYPE_DOES_NOT_EXIST = "AWS.MechanicalTurk.HITTypeDoesNotExist"
QUALIFICATION_TYPE_DOES_NOT_EXIST = "AWS.MechanicalTurk.QualificationTypeDoesNotExist"
UNSUPPORTED = "AWS.MechanicalTurk.UnsupportedParameter"
_UNSUPPORTED_PARAMETERS = (
    "HITLayoutId",
    "HITLayoutParameters",
    "AssignmentReviewPolicy",
    "HITReviewPolicy",
)


def insufficient_funds() -> MTurkRequestError:
    return MTurkRequestError(
        "This Requester has insufficient funds in their account to complete this transaction. "
        "Please visit https://requester.mturk.com/account to purchase more prepaid HITs.",
        INSUFFICIENT_FUNDS,
    )


def payments_client(call: MTurkCall) -> InternalClient:
    return call.request.app.state.peers["payments"]


# --------------------------------------------------------------------------- HIT types


def _fingerprint(props: HitTypeProperties) -> str:
    return dumps(
        [
            props.title,
            props.description,
            list(props.keywords),
            props.reward_cents,
            props.assignment_duration_seconds,
            props.auto_approve_seconds,
            props.assignments_per_task,
            props.requirements(),
        ]
    ).decode()


async def _check_qualification_types(db: WriteDb, props: HitTypeProperties) -> None:
    custom = sorted(
        {
            r["qualification_type_id"]
            for r in props.requirements()
            if r["qualification_type_id"] not in mapping.SYSTEM_QUALIFICATION_TYPE_IDS
        }
    )
    active = await projects_repository.active_qualification_type_ids(db, custom)
    for type_id in custom:
        if type_id not in active:
            raise MTurkRequestError(
                f"QualificationType {type_id} does not exist.", QUALIFICATION_TYPE_DOES_NOT_EXIST
            )


def _project_create(props: HitTypeProperties) -> ProjectCreate:
    try:
        return ProjectCreate(
            title=props.title,
            description=props.description,
            keywords=list(props.keywords),
            task_type=MTURK_TASK_TYPE,
            reward=mapping.amount_from_cents(props.reward_cents),
            assignments_per_task=props.assignments_per_task,
            assignment_duration_seconds=props.assignment_duration_seconds,
            lifetime_seconds=mapping.HIT_TYPE_LIFETIME_SECONDS,
            auto_approve_seconds=props.auto_approve_seconds,
            qualification_requirements=props.requirements(),
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise mapping.out_of_range(f"{where}: {problem['msg']}") from exc


async def _find_hit_type(call: MTurkCall, db: WriteDb, props: HitTypeProperties) -> str | None:
    return await repo.find_hit_type(
        db,
        requester_id=call.requester_id,
        task_type=MTURK_TASK_TYPE,
        title=props.title,
        description=props.description,
        keywords=props.keywords,
        reward_cents=props.reward_cents,
        assignment_duration_seconds=props.assignment_duration_seconds,
        auto_approve_seconds=props.auto_approve_seconds,
        assignments_per_task=props.assignments_per_task,
        qualification_requirements=props.requirements(),
    )


async def hit_type_for(call: MTurkCall, db: WriteDb, props: HitTypeProperties) -> str:
    """The requester's HIT type with exactly these properties: an existing live project, or a
    new one created and published in `db`'s transaction.

    The usual case (the type exists) is one read. Otherwise the (requester, properties) lock is
    taken and the read repeated (a statement under READ COMMITTED sees what a racing call that
    held the lock committed), so racing calls create one project."""
    found = await _find_hit_type(call, db, props)
    if found is not None:
        return found
    await repo.lock_hit_type_properties(
        db, requester_id=call.requester_id, fingerprint=_fingerprint(props)
    )
    found = await _find_hit_type(call, db, props)
    if found is not None:
        return found
    await _check_qualification_types(db, props)
    project = await projects.create_project(
        db, requester_id=call.requester_id, data=_project_create(props)
    )
    # An empty project: publishing reserves nothing; each HIT reserves its own slots.
    await projects.publish_project(
        db,
        payments=payments_client(call),
        requester_id=call.requester_id,
        project_id=project.id,
    )
    return project.id


@mturk_operation("CreateHITType")
async def create_hit_type(call: MTurkCall) -> dict[str, Any]:
    props = mapping.hit_type_properties(call.params)
    async with call.database.transaction() as db:
        hit_type_id = await hit_type_for(call, db, props)
    return {"HITTypeId": to_mturk(hit_type_id)}


# --------------------------------------------------------------------------- HITs


def _refuse_unsupported(params: dict[str, Any]) -> None:
    for name in _UNSUPPORTED_PARAMETERS:
        if params.get(name):
            raise MTurkRequestError(
                f"{name} is not supported by this service; send the HIT's Question instead."
                if name.startswith("HITLayout")
                else f"{name} is not supported by this service: review assignments with "
                "ApproveAssignment and RejectAssignment.",
                UNSUPPORTED,
            )


def _hit_input(params: dict[str, Any]) -> dict[str, Any]:
    """The task input of a HIT: its question XML (validated, QUESTIONS' parser) and kind."""
    question = params.get("Question")
    if question is None:
        raise MTurkRequestError(
            "Either a Question parameter or a HITLayoutId parameter must be provided.",
            mapping.PARAMETER_OUT_OF_RANGE,
        )
    parsed = parse_question(question)
    return {mapping.QUESTION_KEY: question, mapping.QUESTION_KIND_KEY: parsed.kind}


def _annotation(params: dict[str, Any]) -> str | None:
    annotation = params.get("RequesterAnnotation")
    if annotation is None or annotation == "":
        return None
    if len(annotation) > mapping.MAX_ANNOTATION_CHARS:
        raise mapping.out_of_range(
            f"RequesterAnnotation must be at most {mapping.MAX_ANNOTATION_CHARS} characters long."
        )
    return annotation


def _max_assignments(params: dict[str, Any]) -> int:
    if params.get("MaxAssignments") is None:
        return 1
    return mapping.integer_in_range(params, "MaxAssignments", mapping.MAX_ASSIGNMENTS_RANGE)


async def add_hit(
    call: MTurkCall,
    db: WriteDb,
    *,
    project_id: str,
    task_input: dict[str, Any],
    max_assignments: int,
    lifetime_seconds: int,
    annotation: str | None,
) -> str:
    """One task in the HIT type's project through the native upload (which reserves its slots'
    money from the available balance: 402 becomes MTurk's insufficient-funds error), with its
    own expiry."""
    task: dict[str, Any] = {"input": task_input, "max_assignments": max_assignments}
    if annotation is not None:
        task["external_id"] = annotation
    try:
        created = await tasks.add_tasks(
            db,
            payments=payments_client(call),
            requester_id=call.requester_id,
            project_id=project_id,
            content_type="application/json",
            body=orjson.dumps({"tasks": [task]}),
            max_tasks=1,
            # The reservation's key derives from it: a retry of this call (same invocation id)
            # whose first attempt reserved but did not commit reserves nothing twice.
            idempotency_key=call.idempotency_key(f"CreateHIT:{project_id}"),
        )
    except AppError as exc:
        if exc.status == 402:
            raise insufficient_funds() from exc
        raise
    task_id = created.task_ids[0]
    await repo.set_task_lifetime(db, task_id=task_id, lifetime_seconds=lifetime_seconds)
    return task_id


def hit_view(row: repo.HitRow) -> HitView:
    return HitView(
        task_id=row.id,
        project_id=row.project_id,
        project_status=row.project_status,
        created_at=row.created_at,
        title=row.title,
        description=row.description,
        keywords=row.keywords,
        reward_cents=row.reward_cents,
        assignment_duration_seconds=row.assignment_duration_seconds,
        auto_approve_seconds=row.auto_approve_seconds,
        qualification_requirements=row.qualification_requirements,
        task_input=row.input,
        external_id=row.external_id,
        task_status=row.task_status,
        max_assignments=row.max_assignments,
        open_slots=row.open_slots,
        expires_at=row.expires_at,
        disposed=row.disposed,
        counts=mapping.AssignmentCounts(
            accepted=row.accepted,
            submitted=row.submitted,
            approved=row.approved,
            rejected=row.rejected,
        ),
    )


def hit_output(call: MTurkCall, row: repo.HitRow) -> dict[str, Any]:
    return mapping.hit_shape(hit_view(row), call.now)


async def _created_hit(call: MTurkCall, db: WriteDb, task_id: str) -> dict[str, Any]:
    row = await repo.get_hit(db, requester_id=call.requester_id, task_id=task_id)
    assert row is not None  # created in this transaction
    return {"HIT": hit_output(call, row)}


async def _claim_token(call: MTurkCall, db: WriteDb) -> str | None:
    """MTurk's UniqueRequestToken for HITs (idempotency.py: 24 h, MTurk's error on a reused
    token, naming the HIT it created), claimed in the creating transaction so a refusal
    releases it. Returns the token to remember the new HIT under."""
    token = call.params.get("UniqueRequestToken")
    if not token:
        return None
    existing = await idempotency.request_token_resource(db, call, scope="HIT", token=token)
    await idempotency.claim_request_token(
        db,
        call,
        scope="HIT",
        token=token,
        duplicate_message="There is already a HIT with this unique request token"
        + (f": HIT {existing}." if existing else "."),
    )
    return token


async def _remember_token(call: MTurkCall, db: WriteDb, token: str | None, task_id: str) -> None:
    await idempotency.set_request_token_resource(
        db, call, scope="HIT", token=token, resource_id=task_id
    )


@mturk_operation("CreateHIT")
async def create_hit(call: MTurkCall) -> dict[str, Any]:
    params = call.params
    _refuse_unsupported(params)
    max_assignments = _max_assignments(params)
    props = mapping.hit_type_properties(params, max_assignments=max_assignments)
    lifetime = mapping.integer_in_range(params, "LifetimeInSeconds", mapping.LIFETIME_RANGE)
    task_input = _hit_input(params)
    annotation = _annotation(params)
    async with call.database.transaction() as db:
        token = await _claim_token(call, db)
        hit_type_id = await hit_type_for(call, db, props)
        task_id = await add_hit(
            call,
            db,
            project_id=hit_type_id,
            task_input=task_input,
            max_assignments=max_assignments,
            lifetime_seconds=lifetime,
            annotation=annotation,
        )
        await _remember_token(call, db, token, task_id)
        return await _created_hit(call, db, task_id)


@mturk_operation("CreateHITWithHITType")
async def create_hit_with_hit_type(call: MTurkCall) -> dict[str, Any]:
    params = call.params
    _refuse_unsupported(params)
    hit_type_id = native_id(params["HITTypeId"], "HITTypeId")
    max_assignments = _max_assignments(params)
    lifetime = mapping.integer_in_range(params, "LifetimeInSeconds", mapping.LIFETIME_RANGE)
    task_input = _hit_input(params)
    annotation = _annotation(params)
    async with call.database.transaction() as db:
        token = await _claim_token(call, db)
        hit_type = await repo.get_hit_type(
            db, requester_id=call.requester_id, project_id=hit_type_id
        )
        if hit_type is None or hit_type.task_type != MTURK_TASK_TYPE:
            # A native project of another task type has no question to carry: not a HIT type.
            raise MTurkRequestError(
                f"Hit type {hit_type_id} does not exist.", HIT_TYPE_DOES_NOT_EXIST
            )
        if hit_type.status not in ("published", "paused"):
            raise MTurkRequestError(
                f"Hit type {hit_type_id} is {hit_type.status} and takes no new HITs.",
                HIT_TYPE_DOES_NOT_EXIST,
            )
        task_id = await add_hit(
            call,
            db,
            project_id=hit_type_id,
            task_input=task_input,
            max_assignments=max_assignments,
            lifetime_seconds=lifetime,
            annotation=annotation,
        )
        await _remember_token(call, db, token, task_id)
        return await _created_hit(call, db, task_id)


@mturk_operation("GetHIT")
async def get_hit(call: MTurkCall) -> dict[str, Any]:
    hit_id = native_id(call.params["HITId"], "HITId")
    async with call.database.read() as db:
        row = await repo.get_hit(db, requester_id=call.requester_id, task_id=hit_id)
    if row is None:
        raise does_not_exist("HIT", hit_id)
    return {"HIT": hit_output(call, row)}


@mturk_operation("ListHITs")
async def list_hits(call: MTurkCall) -> dict[str, Any]:
    page = page_request(call)
    before = page.after if isinstance(page.after, str) else None
    async with call.database.read() as db:
        rows = await repo.list_hits(
            db, requester_id=call.requester_id, before_id=before, limit=page.limit + 1
        )
    return page_result(
        call, "HITs", rows, page, position=lambda r: r.id, render=lambda r: hit_output(call, r)
    )
