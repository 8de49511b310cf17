"""MTurk credentials (contract: "MTurk credentials"): the access key id and secret a
requester's boto3 `mturk` client signs with (docs/mturk.md). Requester accounts only."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from services.workers.mturk_credentials import service
from services.workers.mturk_credentials.schemas import (
    MTurkCredentialCreated,
    MTurkCredentialList,
)
from shared.auth import RequesterDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized, error_responses

router = APIRouter(prefix="/v1/accounts/me/mturk-credentials", tags=["accounts"])


@router.post(
    "",
    operation_id="create_mturk_credential",
    status_code=status.HTTP_201_CREATED,
    response_model=MTurkCredentialCreated,
    responses=error_responses(Unauthorized, Forbidden, Conflict),
    summary="Create MTurk-style credentials (the secret is shown once)",
)
async def create_mturk_credential(
    request: Request, caller: RequesterDep, db: WriteDbDep
) -> MTurkCredentialCreated:
    settings = request.app.state.settings
    return await service.create_credential(
        db,
        account_id=caller.account_id,
        secrets_key=request.app.state.mturk_secrets_key,
        max_active=settings.max_active_api_keys,
    )


@router.get(
    "",
    operation_id="list_mturk_credentials",
    response_model=MTurkCredentialList,
    responses=error_responses(Unauthorized, Forbidden),
    summary="The active MTurk credentials (without their secrets)",
)
async def list_mturk_credentials(caller: RequesterDep, db: ReadDbDep) -> MTurkCredentialList:
    return await service.list_credentials(db, account_id=caller.account_id)


@router.delete(
    "/{access_key_id}",
    operation_id="revoke_mturk_credential",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="Revoke MTurk credentials; the next signed call with them fails",
)
async def revoke_mturk_credential(access_key_id: str, caller: RequesterDep, db: WriteDbDep) -> None:
    await service.revoke_credential(db, account_id=caller.account_id, access_key_id=access_key_id)
