"""Qualification types and grants on behalf of a requester, for the tasks service's MTurk door.

The door authenticates requesters with SigV4 credentials, not API keys, so it cannot call the
public routes as the requester; these take the requester's account id from the (internal-token
authenticated) caller instead and run the same service functions with the same rules: a type is
managed only by its owner (anyone else's is 404, a system type 403), visibility as in the public
API. Besides the native fields, a type carries the MTurk XML it was made from (migration 0021).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.workers.clock import NowDep
from services.workers.grants import repository as grants_repository
from services.workers.grants import service as grants_service
from services.workers.grants.schemas import GrantRead
from services.workers.profiles.service import WorkerNotFound, worker_exists
from services.workers.qualification_types import repository
from services.workers.qualification_types import service as types_service
from services.workers.qualification_types.repository import QualificationTypeRow
from services.workers.qualification_types.schemas import (
    AnswerKey,
    QualificationTypeCreate,
    QualificationValue,
    Test,
)
from shared.auth import internal_router
from shared.database import ReadDbDep, WriteDbDep
from shared.eligibility import SYSTEM_TYPE_IDS, fetch_worker_facts
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed, error_responses

router = internal_router("/internal/requesters/{requester_id}/qualification-types")

MTurkXml = Annotated[str, Field(max_length=65_535)]


class InternalTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: QualificationTypeCreate
    mturk_test: MTurkXml | None = None
    mturk_answer_key: MTurkXml | None = None


class InternalType(BaseModel):
    """A type as the door shows it; `answer_key` and `mturk_answer_key` only for its owner."""

    id: str
    owner_id: str | None
    is_owner: bool
    name: str
    description: str
    keywords: list[str]
    status: str
    is_system: bool
    test: Test | None
    answer_key: AnswerKey | None
    retry_delay_seconds: int | None
    auto_grant: bool
    auto_grant_value: int
    created_at: Any
    mturk_test: str | None
    mturk_answer_key: str | None


class InternalTypePage(BaseModel):
    items: list[InternalType]


class InternalGrantSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: QualificationValue = 1


class InternalGrantRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class InternalGrant(GrantRead):
    """A grant with its row id: the position a page of grants continues after."""

    id: str


class InternalGrantPage(BaseModel):
    items: list[InternalGrant]


class InternalScore(BaseModel):
    """A worker's value of a type: a grant of the caller's type, or a system value."""

    qualification_type_id: str
    worker_id: str
    value: int | str
    status: Literal["granted", "revoked"]
    granted_at: Any | None
    is_system: bool


def _shown(row: QualificationTypeRow, requester_id: str) -> InternalType:
    is_owner = row.owner_id == requester_id
    data = asdict(row)
    data.pop("updated_at")
    if not is_owner:
        data["answer_key"] = None
        data["mturk_answer_key"] = None
    return InternalType(**data, is_owner=is_owner)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=InternalType,
    responses=error_responses(Conflict, ValidationFailed),
)
async def create_type(requester_id: str, body: InternalTypeCreate, db: WriteDbDep) -> InternalType:
    row = await types_service.insert_type(
        db,
        owner_id=requester_id,
        data=body.type,
        mturk_test=body.mturk_test if body.type.test is not None else None,
        mturk_answer_key=body.mturk_answer_key if body.type.answer_key is not None else None,
    )
    return _shown(row, requester_id)


@router.get("", response_model=InternalTypePage, responses=error_responses(ValidationFailed))
async def list_types(
    requester_id: str,
    db: ReadDbDep,
    limit: Annotated[int, Query(ge=1, le=101)],
    query: Annotated[str | None, Query(max_length=200)] = None,
    mine: bool = False,
    requestable: bool = False,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> InternalTypePage:
    """Newest first; `mine`: all of the requester's own types (any status), else every active
    type; `limit` rows from before the id `before`."""
    rows = await repository.search_types(
        db,
        query=(query or "").strip() or None,
        owner_id=requester_id if mine else None,
        before_id=before,
        limit=limit,
        requestable_only=requestable,
    )
    return InternalTypePage(items=[_shown(r, requester_id) for r in rows])


@router.get("/{type_id}", response_model=InternalType, responses=error_responses(NotFound))
async def get_type(requester_id: str, type_id: str, db: ReadDbDep) -> InternalType:
    row = await types_service.get_visible_type(db, type_id=type_id, caller_id=requester_id)
    return _shown(row, requester_id)


@router.put(
    "/{type_id}/workers/{worker_id}",
    response_model=GrantRead,
    responses=error_responses(Forbidden, NotFound, ValidationFailed),
)
async def set_grant(
    requester_id: str,
    type_id: str,
    worker_id: str,
    body: InternalGrantSet,
    db: WriteDbDep,
    now: NowDep,
) -> GrantRead:
    grant, _ = await grants_service.set_grant(
        db, owner_id=requester_id, type_id=type_id, worker_id=worker_id, value=body.value, now=now
    )
    return grant


@router.post(
    "/{type_id}/workers/{worker_id}/revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Forbidden, NotFound),
)
async def revoke_grant(
    requester_id: str,
    type_id: str,
    worker_id: str,
    body: InternalGrantRevoke,
    db: WriteDbDep,
    now: NowDep,
) -> Response:
    await grants_service.revoke_grant(
        db, owner_id=requester_id, type_id=type_id, worker_id=worker_id, reason=body.reason, now=now
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{type_id}/workers",
    response_model=InternalGrantPage,
    responses=error_responses(Forbidden, NotFound),
)
async def list_grants(
    requester_id: str,
    type_id: str,
    db: ReadDbDep,
    limit: Annotated[int, Query(ge=1, le=101)],
    grant_status: Annotated[Literal["granted", "revoked"], Query(alias="status")] = "granted",
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> InternalGrantPage:
    await types_service.get_owned_type(db, type_id=type_id, owner_id=requester_id)
    rows = await grants_repository.list_grants(
        db, type_id=type_id, status=grant_status, before_id=before, limit=limit
    )
    return InternalGrantPage(
        items=[InternalGrant.model_validate(r, from_attributes=True) for r in rows]
    )


@router.get(
    "/{type_id}/workers/{worker_id}",
    response_model=InternalScore,
    responses=error_responses(Forbidden, NotFound),
)
async def get_score(
    requester_id: str, type_id: str, worker_id: str, db: ReadDbDep
) -> InternalScore:
    """The worker's grant of the caller's type (revoked ones too), or, for a system type, the
    value computed from the worker's record (what requirements on it compare against)."""
    if type_id in SYSTEM_TYPE_IDS:
        if not await worker_exists(db, worker_id=worker_id):
            raise WorkerNotFound("Worker not found.")
        facts = await fetch_worker_facts(
            db, worker_id=worker_id, requester_ids=(), qualification_type_ids=()
        )
        value = facts.value_of(type_id)
        if value is None:
            raise grants_service.GrantNotFound("This worker has no value for this qualification.")
        return InternalScore(
            qualification_type_id=type_id,
            worker_id=worker_id,
            value=value,
            status="granted",
            granted_at=None,
            is_system=True,
        )
    await types_service.get_owned_type(db, type_id=type_id, owner_id=requester_id)
    row = await grants_repository.get_grant(db, worker_id=worker_id, type_id=type_id)
    if row is None:
        raise grants_service.GrantNotFound("This worker does not hold this qualification.")
    return InternalScore(
        qualification_type_id=type_id,
        worker_id=worker_id,
        value=row.value,
        status=row.status,  # type: ignore[arg-type]
        granted_at=row.granted_at,
        is_system=False,
    )
