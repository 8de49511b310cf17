"""SQL for accounts and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Account, ApiKey

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


async def insert_account(session: AsyncSession, values: dict[str, Any]) -> Row | None:
    """Insert unless (kind, email_normalized) is taken; None means the email is already
    registered. A concurrent sign-up with the same normalised address waits on the unique index
    until the first commits, then finds the conflict: one account, one 201, the other 409."""
    stmt = pg_insert(Account).values(**values).on_conflict_do_nothing().returning(*_ACCOUNT_COLS)
    return (await session.execute(stmt)).first()


async def get_account(session: AsyncSession, account_id: str) -> Row | None:
    return (await session.execute(select(*_ACCOUNT_COLS).where(Account.id == account_id))).first()


async def lock_account_and_count_active_keys(session: AsyncSession, account_id: str) -> int:
    """Serialise key creation per account (the row lock, FOR NO KEY UPDATE, does not block
    other tables' foreign-key checks against the account), then count its active keys."""
    await session.execute(
        select(Account.id).where(Account.id == account_id).with_for_update(key_share=True)
    )
    stmt = select(func.count()).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
    return (await session.execute(stmt)).scalar_one()


async def insert_api_key(session: AsyncSession, values: dict[str, Any]) -> Row:
    stmt = insert(ApiKey).values(**values).returning(*_KEY_COLS)
    return (await session.execute(stmt)).one()


async def list_api_keys(
    session: AsyncSession, account_id: str, *, before_id: str | None, limit: int
) -> Sequence[Row]:
    stmt = (
        select(*_KEY_COLS)
        .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(ApiKey.id < before_id)
    return (await session.execute(stmt)).all()


async def revoke_api_key(session: AsyncSession, account_id: str, key_id: str) -> bool:
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return (await session.execute(stmt)).first() is not None
