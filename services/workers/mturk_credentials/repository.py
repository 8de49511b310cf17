from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from services.workers.mturk_credentials.schemas import MTurkCredentialRead
from shared.database import Db, Writable, WriteDb, as_row, as_rows
from shared.models import Account
from shared.models.mturk import MTurkCredential

_COLS = (MTurkCredential.access_key_id, MTurkCredential.created_at, MTurkCredential.last_used_at)


async def lock_account_and_count_active(db: WriteDb, account_id: str) -> int:
    """Serialise creation per account, then count its active credentials (the cap)."""
    await db.execute(
        select(Account.id).where(Account.id == account_id).with_for_update(key_share=True)
    )
    stmt = select(func.count()).where(
        MTurkCredential.account_id == account_id, MTurkCredential.revoked_at.is_(None)
    )
    return await db.fetchval(stmt)


async def insert_credential(
    db: Writable, *, access_key_id: str, account_id: str, secret_ciphertext: bytes
) -> MTurkCredentialRead:
    stmt = (
        insert(MTurkCredential)
        .values(
            access_key_id=access_key_id, account_id=account_id, secret_ciphertext=secret_ciphertext
        )
        .returning(*_COLS)
    )
    row = as_row(MTurkCredentialRead, await db.fetchrow(stmt))
    assert row is not None
    return row


async def list_active(db: Db, account_id: str) -> list[MTurkCredentialRead]:
    stmt = (
        select(*_COLS)
        .where(MTurkCredential.account_id == account_id, MTurkCredential.revoked_at.is_(None))
        .order_by(MTurkCredential.created_at.desc(), MTurkCredential.access_key_id)
    )
    return as_rows(MTurkCredentialRead, await db.fetch(stmt))


async def revoke(db: Writable, account_id: str, access_key_id: str) -> bool:
    stmt = (
        update(MTurkCredential)
        .where(
            MTurkCredential.access_key_id == access_key_id,
            MTurkCredential.account_id == account_id,
            MTurkCredential.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(MTurkCredential.access_key_id)
    )
    return await db.fetchval(stmt) is not None
