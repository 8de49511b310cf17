"""Qualification types (contract: "Workers and qualifications")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.workers.qualification_types import service
from services.workers.qualification_types.schemas import (
    QualificationTypeCreate,
    QualificationTypeOwnerRead,
    QualificationTypeRead,
    QualificationTypeUpdate,
)
from shared.auth import OptionalCallerDep, RequesterDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/qualification-types", tags=["qualification types"])


@router.post(
    "",
    operation_id="create_qualification_type",
    status_code=201,
    response_model=QualificationTypeOwnerRead,
    responses=error_responses(Unauthorized, Forbidden, Conflict, ValidationFailed),
    summary="Create a qualification type (name unique per requester)",
)
async def create_type(body: QualificationTypeCreate, caller: RequesterDep, idem: IdempotencyDep):
    return await idem.run(
        caller,
        lambda db: service.create_type(db, owner_id=caller.account_id, data=body),
    )


@router.get(
    "",
    operation_id="list_qualification_types",
    response_model=Page[QualificationTypeRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Search active types by name or keyword, newest first; no API key needed "
    "(mine=true: all of a requester's own types)",
)
async def search_types(
    caller: OptionalCallerDep,
    db: ReadDbDep,
    page: PageDep,
    query: Annotated[str | None, Query(max_length=200)] = None,
    mine: bool = False,
) -> Page[QualificationTypeRead]:
    return await service.search_types(db, caller=caller, query=query, mine=mine, page=page)


@router.get(
    "/{type_id}",
    operation_id="get_qualification_type",
    response_model=QualificationTypeOwnerRead | QualificationTypeRead,
    responses=error_responses(Unauthorized, NotFound),
    summary="One type (no API key needed); the answer key only for its owner",
)
async def get_type(
    type_id: str, caller: OptionalCallerDep, db: ReadDbDep
) -> QualificationTypeOwnerRead | QualificationTypeRead:
    return await service.get_type(db, type_id=type_id, caller=caller)


@router.patch(
    "/{type_id}",
    operation_id="update_qualification_type",
    response_model=QualificationTypeOwnerRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Change description, keywords, status, retry delay, test, answer key (owner)",
)
async def update_type(
    type_id: str, body: QualificationTypeUpdate, caller: RequesterDep, db: WriteDbDep
) -> QualificationTypeOwnerRead:
    return await service.update_type(db, owner_id=caller.account_id, type_id=type_id, data=body)
