"""SQL for accounts and API keys (Core: plain CRUD, see docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.workers.accounts.schemas import AccountRead, ApiKeyRead
from shared.database import Db, Writable, WriteDb, as_row, as_rows
from shared.models import Account, ApiKey
from shared.pagination import newest_first

# The rows are the response shapes themselves: the statements select exactly their fields.
_ACCOUNT_COLS = (
    Account.id,
    Account.kind,
    Account.name,
    Account.email,
    Account.country,
    Account.languages,
    Account.created_at,
)
_KEY_COLS = (ApiKey.id, ApiKey.prefix, ApiKey.name, ApiKey.created_at, ApiKey.last_used_at)


async def insert_account(db: Writable, values: dict[str, Any]) -> AccountRead | None:
    """Insert unless (kind, email_normalized) is taken; None means the email is already
    registered. A concurrent sign-up with the same normalised address waits on the unique index
    until the first commits, then finds the conflict: one account, one 201, the other 409."""
    stmt = pg_insert(Account).values(**values).on_conflict_do_nothing().returning(*_ACCOUNT_COLS)
    return as_row(AccountRead, await db.fetchrow(stmt))


async def get_account(db: Db, account_id: str) -> AccountRead | None:
    stmt = select(*_ACCOUNT_COLS).where(Account.id == account_id)
    return as_row(AccountRead, await db.fetchrow(stmt))


async def lock_account_and_count_active_keys(db: WriteDb, account_id: str) -> int:
    """Serialise key creation per account (the row lock, FOR NO KEY UPDATE, does not block
    other tables' foreign-key checks against the account), then count its active keys."""
    await db.execute(
        select(Account.id).where(Account.id == account_id).with_for_update(key_share=True)
    )
    stmt = select(func.count()).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
    return await db.fetchval(stmt)


async def insert_api_key(db: Writable, values: dict[str, Any]) -> ApiKeyRead:
    stmt = insert(ApiKey).values(**values).returning(*_KEY_COLS)
    row = as_row(ApiKeyRead, await db.fetchrow(stmt))
    assert row is not None
    return row


async def list_api_keys(
    db: Db, account_id: str, *, before_id: str | None, limit: int
) -> list[ApiKeyRead]:
    stmt = newest_first(
        select(*_KEY_COLS).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None)),
        ApiKey.id,
        before_id=before_id,
        limit=limit,
    )
    return as_rows(ApiKeyRead, await db.fetch(stmt))


async def revoke_api_key(db: Writable, account_id: str, key_id: str) -> bool:
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return await db.fetchval(stmt) is not None
