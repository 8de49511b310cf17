"""Accounts and API keys (contract: "Accounts").

`POST /v1/accounts` and `POST /v1/accounts/me/api-keys` take `Idempotency-Key`: a retry with the
same key and body within 24 h gets the first response again, API key included, which is kept
at rest only sealed with a key derived from the Idempotency-Key (accounts/replay.py). Sign-up's
keys are anonymous: they must be unguessable (a UUID4).

Limits: sign-up per client address (shared.auth.limit_by_client_address); key creation per
account (`*_RATE_LIMIT_API_KEY_CREATION`) and at most `*_MAX_ACTIVE_API_KEYS` active keys.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from services.workers.accounts import replay, service
from services.workers.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountRead,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
)
from shared.auth import CallerDep, SignupRateLimitDep
from shared.database import ReadDbDep, WriteDb, WriteDbDep
from shared.errors import (
    Conflict,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyKeyHeader, checked_idempotency_key
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountCreated,
    responses=error_responses(Conflict, ValidationFailed, RateLimited),
    dependencies=[SignupRateLimitDep],
    summary="Sign up as a requester or a worker; the first API key is returned once",
    description="With `Idempotency-Key` (use a random UUID: sign-up is anonymous, so the key is "
    "the only secret of a replay), a retry within 24 h returns the first response again, API "
    "key included.",
)
async def create_account(
    request: Request,
    body: AccountCreate,
    db: WriteDbDep,
    idempotency_key: IdempotencyKeyHeader = None,
):
    return await replay.run_signup(
        request,
        db,
        checked_idempotency_key(idempotency_key),
        lambda db: service.create_account(db, data=body),
        account_id=lambda created: created.account.id,
    )


@router.get(
    "/me",
    operation_id="get_my_account",
    response_model=AccountRead,
    responses=error_responses(Unauthorized),
)
async def get_me(caller: CallerDep, db: ReadDbDep) -> AccountRead:
    return await service.get_account(db, account_id=caller.account_id)


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(Unauthorized, Conflict, ValidationFailed, RateLimited),
    summary="Create another API key (shown once); 409 too_many_api_keys at the cap",
)
async def create_api_key(
    request: Request,
    caller: CallerDep,
    db: WriteDbDep,
    body: ApiKeyCreate | None = None,
    idempotency_key: IdempotencyKeyHeader = None,
):
    settings = request.app.state.settings

    async def create(db: WriteDb) -> ApiKeyCreated:
        # Inside the replayable action: a replay neither counts nor is refused by the cap.
        await request.app.state.api_key_creation_rate_limiter.check(caller.account_id)
        return await service.create_api_key(
            db,
            account_id=caller.account_id,
            name=body.name if body else None,
            max_active=settings.max_active_api_keys,
        )

    return await replay.run_key_creation(
        request, db, caller, checked_idempotency_key(idempotency_key), create
    )


@router.get(
    "/me/api-keys", response_model=Page[ApiKeyRead], responses=error_responses(Unauthorized)
)
async def list_api_keys(caller: CallerDep, db: ReadDbDep, page: PageDep) -> Page[ApiKeyRead]:
    return await service.list_api_keys(db, account_id=caller.account_id, page=page)


@router.delete(
    "/me/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, NotFound),
    summary="Revoke a key; it stops working at once on every service",
)
async def revoke_api_key(key_id: str, caller: CallerDep, db: WriteDbDep) -> None:
    await service.revoke_api_key(db, account_id=caller.account_id, key_id=key_id)
