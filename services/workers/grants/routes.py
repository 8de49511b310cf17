"""Grants (contract: "Workers and qualifications")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.workers.clock import NowDep
from services.workers.grants import service
from services.workers.grants.schemas import (
    GrantRead,
    GrantRevoke,
    GrantSet,
    GrantStatus,
    WorkerQualificationRead,
)
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

router = APIRouter(tags=["qualification grants"])


@router.put(
    "/v1/qualification-types/{type_id}/workers/{worker_id}",
    operation_id="set_qualification_grant",
    response_model=GrantRead,
    status_code=status.HTTP_200_OK,
    responses={
        201: {"model": GrantRead, "description": "Granted (the worker did not hold it)"},
        **error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    },
    summary="Grant the qualification or change its value (owner); 201 when newly granted",
)
async def set_grant(
    type_id: str,
    worker_id: str,
    body: GrantSet,
    caller: RequesterDep,
    db: WriteDbDep,
    now: NowDep,
    response: Response,
) -> GrantRead:
    grant, created = await service.set_grant(
        db,
        owner_id=caller.account_id,
        type_id=type_id,
        worker_id=worker_id,
        value=body.value,
        now=now,
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return grant


@router.delete(
    "/v1/qualification-types/{type_id}/workers/{worker_id}",
    operation_id="revoke_qualification_grant",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Revoke the qualification (owner), with an optional {reason} body",
)
async def revoke_grant(
    type_id: str,
    worker_id: str,
    caller: RequesterDep,
    db: WriteDbDep,
    now: NowDep,
    body: GrantRevoke | None = None,
) -> None:
    await service.revoke_grant(
        db,
        owner_id=caller.account_id,
        type_id=type_id,
        worker_id=worker_id,
        reason=body.reason if body else None,
        now=now,
    )


@router.get(
    "/v1/qualification-types/{type_id}/workers",
    operation_id="list_qualification_grants",
    response_model=Page[GrantRead],
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Workers holding the qualification (owner), newest grant first",
)
async def list_grants(
    type_id: str,
    caller: RequesterDep,
    db: ReadDbDep,
    page: PageDep,
    status: Annotated[GrantStatus, Query()] = "granted",
) -> Page[GrantRead]:
    return await service.list_grants(
        db, owner_id=caller.account_id, type_id=type_id, status=status, page=page
    )


@router.get(
    "/v1/workers/me/qualifications",
    response_model=Page[WorkerQualificationRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="The calling worker's qualifications with values, system ones included",
)
async def list_my_qualifications(
    caller: WorkerDep, db: ReadDbDep, page: PageDep
) -> Page[WorkerQualificationRead]:
    return await service.list_my_qualifications(db, worker_id=caller.account_id, page=page)
