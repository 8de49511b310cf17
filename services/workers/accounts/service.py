"""Account rules: sign-up issues the first key; keys are shown once and stored as hashes.

An e-mail address is unique per kind once normalised (shared.models.accounts.normalize_email:
Unicode NFKC + case folding), by the database's unique index on (kind, email_normalized); the
address is kept as typed for display. An account holds at most `max_active_api_keys` active
keys (409 `too_many_api_keys`: revoke one first)."""

from __future__ import annotations

from services.workers.accounts import repository
from services.workers.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountRead,
    ApiKeyCreated,
    ApiKeyRead,
)
from services.workers.profiles.service import create_profile_for_new_worker
from shared.auth import forget_api_key_in_process, generate_api_key
from shared.database import Db, Writable, WriteDb
from shared.errors import Conflict, NotFound
from shared.ids import new_id
from shared.models.accounts import normalize_email
from shared.pagination import Page, PageParams


class EmailTaken(Conflict):
    code = "email_taken"


class TooManyApiKeys(Conflict):
    code = "too_many_api_keys"


async def _issue_key(db: Writable, account_id: str, name: str | None) -> ApiKeyCreated:
    key, prefix, key_hash = generate_api_key()
    row = await repository.insert_api_key(
        db,
        {
            "id": new_id(),
            "account_id": account_id,
            "prefix": prefix,
            "key_hash": key_hash,
            "name": name,
        },
    )
    return ApiKeyCreated(**row.model_dump(), api_key=key)


async def create_account(db: WriteDb, *, data: AccountCreate) -> AccountCreated:
    row = await repository.insert_account(
        db,
        {
            "id": new_id(),
            "kind": data.kind,
            "name": data.name,
            "email": str(data.email),
            "email_normalized": normalize_email(str(data.email)),
            "country": data.country,
            "languages": data.languages,
        },
    )
    if row is None:
        raise EmailTaken(f"A {data.kind} account with this email already exists.")
    if row.kind == "worker":
        await create_profile_for_new_worker(
            db,
            worker_id=row.id,
            name=row.name,
            country=row.country,
            languages=list(row.languages),
        )
    key = await _issue_key(db, row.id, "default")
    return AccountCreated(account=row, api_key=key.api_key)


async def get_account(db: Db, *, account_id: str) -> AccountRead:
    row = await repository.get_account(db, account_id)
    if row is None:
        raise NotFound("Account not found.")
    return row


async def create_api_key(
    db: WriteDb, *, account_id: str, name: str | None, max_active: int
) -> ApiKeyCreated:
    active = await repository.lock_account_and_count_active_keys(db, account_id)
    if active >= max_active:
        raise TooManyApiKeys(
            f"This account already has {active} active API keys (at most {max_active}); "
            "revoke one (DELETE /v1/accounts/me/api-keys/{key_id}) before creating another.",
            extra={"max_active_api_keys": max_active},
        )
    return await _issue_key(db, account_id, name)


async def list_api_keys(db: Db, *, account_id: str, page: PageParams) -> Page[ApiKeyRead]:
    rows = await repository.list_api_keys(db, account_id, before_id=page.before, limit=page.fetch)
    items, next_cursor = page.page_by_id(rows)
    return Page(items=items, next_cursor=next_cursor)


async def revoke_api_key(db: Writable, *, account_id: str, key_id: str) -> None:
    """Other processes drop the key from their caches on the trigger's notification, once this
    commits; this process stops accepting it at once (see shared.auth)."""
    if not await repository.revoke_api_key(db, account_id, key_id):
        raise NotFound("API key not found.")
    forget_api_key_in_process(key_id)
