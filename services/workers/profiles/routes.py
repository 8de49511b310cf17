"""Worker profiles (contract: "Workers and qualifications")."""

from __future__ import annotations

from fastapi import APIRouter

from services.workers.profiles import service
from services.workers.profiles.schemas import ProfileUpdate, WorkerProfileRead
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get(
    "/me",
    response_model=WorkerProfileRead,
    responses=error_responses(Unauthorized, Forbidden),
    summary="The calling worker's profile and stats",
)
async def get_my_profile(caller: WorkerDep, db: ReadDbDep) -> WorkerProfileRead:
    return await service.get_profile(db, worker_id=caller.account_id)


@router.patch(
    "/me",
    response_model=WorkerProfileRead,
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Change display name, country, languages, skills or bio",
)
async def update_my_profile(
    body: ProfileUpdate, caller: WorkerDep, db: WriteDbDep
) -> WorkerProfileRead:
    return await service.update_profile(db, worker_id=caller.account_id, data=body)


@router.get(
    "/{worker_id}",
    response_model=WorkerProfileRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="A worker's public profile with submitted/approved/rejected counts (requesters)",
)
async def get_worker(worker_id: str, caller: RequesterDep, db: ReadDbDep) -> WorkerProfileRead:
    return await service.get_profile(db, worker_id=worker_id)
