"""A payout batch's savepoints: each round of `pay_batch` runs inside one, so a round that
refuses an item gives back the keys it claimed while the batch stays one transaction.

The payouts' own statements live with their tables: the ledger's (claiming keys, locking
accounts, posting legs) in ledger/repository.py, the holds' (locking and drawing them) in
reservations/repository.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from shared.database import WriteDb

SAVEPOINT_SQL = "SAVEPOINT payout_round"
ROLLBACK_TO_SAVEPOINT_SQL = "ROLLBACK TO SAVEPOINT payout_round"
RELEASE_SAVEPOINT_SQL = "RELEASE SAVEPOINT payout_round"


@contextlib.asynccontextmanager
async def savepoint(db: WriteDb) -> AsyncIterator[None]:
    """The block's statements are undone (the transaction goes on) if it raises."""
    await db.execute(SAVEPOINT_SQL)
    try:
        yield
    except BaseException:
        # A connection that broke mid-round cannot roll back: its own error is the one to see.
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            await db.execute(ROLLBACK_TO_SAVEPOINT_SQL)
        raise
    await db.execute(RELEASE_SAVEPOINT_SQL)
