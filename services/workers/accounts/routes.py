"""Accounts and API keys (contract: "Accounts").

`POST /v1/accounts` and `POST /v1/accounts/me/api-keys` do not replay `Idempotency-Key`: a replay
would need the key in plain text at rest. Sign-up is naturally idempotent on the email (409).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from services.workers.accounts import service
from services.workers.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountRead,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
)
from shared.auth import CallerDep, SignupRateLimitDep
from shared.db import SessionDep
from shared.errors import (
    Conflict,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountCreated,
    responses=error_responses(Conflict, ValidationFailed, RateLimited),
    dependencies=[SignupRateLimitDep],
    summary="Sign up as a requester or a worker; the first API key is returned once",
)
async def create_account(body: AccountCreate, session: SessionDep) -> AccountCreated:
    return await service.create_account(session, data=body)


@router.get("/me", response_model=AccountRead, responses=error_responses(Unauthorized))
async def get_me(caller: CallerDep, session: SessionDep) -> AccountRead:
    return await service.get_account(session, account_id=caller.account_id)


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(Unauthorized, ValidationFailed),
)
async def create_api_key(
    caller: CallerDep, session: SessionDep, body: ApiKeyCreate | None = None
) -> ApiKeyCreated:
    return await service.create_api_key(
        session, account_id=caller.account_id, name=body.name if body else None
    )


@router.get(
    "/me/api-keys", response_model=Page[ApiKeyRead], responses=error_responses(Unauthorized)
)
async def list_api_keys(caller: CallerDep, session: SessionDep, page: PageDep) -> Page[ApiKeyRead]:
    items, next_cursor = await service.list_api_keys(
        session, account_id=caller.account_id, page=page
    )
    return Page(items=items, next_cursor=next_cursor)


@router.delete(
    "/me/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, NotFound),
    summary="Revoke a key; it stops working at once on every service",
)
async def revoke_api_key(key_id: str, caller: CallerDep, session: SessionDep) -> None:
    await service.revoke_api_key(session, account_id=caller.account_id, key_id=key_id)
