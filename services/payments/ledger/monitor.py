"""The ledger check, run in the background so an alert fires when an invariant breaks.

Every `PAYMENTS_LEDGER_CHECK_INTERVAL_SECONDS` each payments process runs the same check as
`GET /internal/ledger/check` (service.check: one REPEATABLE READ snapshot; legs of every
transaction sum to zero, no non-external balance below zero, cached balances, holds and
payouts agree with the entries) and records the outcome in the marketplace_ledger_check_*
gauges: `ok` 1/0, the time it finished, how long it took. The check reads every entry, so
replicas take turns under a session advisory lock: a process that finds the lock taken skips
its turn and keeps its previous figures (the alert looks at the newest run of any replica:
`marketplace_ledger_check_ok == 0`, and at `time() - marketplace_ledger_check_last_run_...`
to notice that no check ran at all).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.payments.ledger import repository, service
from services.payments.ledger.schemas import LedgerCheck
from shared.database import Database
from shared.metrics import (
    LEDGER_CHECK_DURATION,
    LEDGER_CHECK_LAST_RUN,
    LEDGER_CHECK_OK,
    periodic,
)

log = logging.getLogger("payments.ledger")


async def run_ledger_check(database: Database) -> LedgerCheck | None:
    """One turn: the check's result, or None when another replica is running it now."""
    async with database.autocommit() as db:  # the primary, one connection for lock and check
        if not await repository.try_check_lock(db):
            return None
        try:
            started = time.perf_counter()
            async with db.transaction() as tx:
                result = await service.check(tx)
            LEDGER_CHECK_DURATION.set(time.perf_counter() - started)
        finally:
            await repository.check_unlock(db)
    LEDGER_CHECK_OK.set(1 if result.ok else 0)
    LEDGER_CHECK_LAST_RUN.set(time.time())
    if not result.ok:
        log.error("ledger check failed: %s", result.model_dump_json())
    return result


@asynccontextmanager
async def ledger_check_lifespan(app: FastAPI) -> AsyncIterator[None]:
    database: Database = app.state.database

    async def sample() -> None:
        await run_ledger_check(database)

    async with periodic("ledger-check", app.state.settings.ledger_check_interval_seconds, sample):
        yield
