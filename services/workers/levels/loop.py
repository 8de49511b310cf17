"""The levels loop: recompute the queued workers, then let the due falls fall.

Workers are queued by the stats compaction (every worker whose counters it folded: an answer
submitted, decided, or flipped in or out of standing) and by a passed qualification test. Both
claims are `FOR UPDATE SKIP LOCKED` in the recomputing transaction, so any number of workers
processes run this loop side by side, each on its own workers, and a recompute that fails rolls
back and leaves its workers queued (or due) for the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime

from fastapi import FastAPI

from services.workers.clock import app_now
from services.workers.levels import repository
from services.workers.levels.ladder import Ladder
from services.workers.levels.service import recompute_worker
from shared.database import Database, WriteDb
from shared.errors import describe_error, is_database_outage

log = logging.getLogger("workers.levels")


async def _drain(
    database: Database,
    ladder: Ladder,
    *,
    now: datetime,
    batch: int,
    claim: Callable[[WriteDb], Awaitable[list[str]]],
) -> int:
    total = 0
    while True:
        async with database.transaction() as db:
            worker_ids = await claim(db)
            for worker_id in worker_ids:
                await recompute_worker(db, ladder, worker_id=worker_id, now=now)
        total += len(worker_ids)
        if len(worker_ids) < batch:
            return total


async def recompute_queued(database: Database, ladder: Ladder, *, now: datetime, batch: int) -> int:
    """Recompute every queued worker, a committed transaction per batch; returns how many."""
    return await _drain(
        database,
        ladder,
        now=now,
        batch=batch,
        claim=lambda db: repository.claim_queued(db, batch=batch),
    )


async def apply_due_falls(database: Database, ladder: Ladder, *, now: datetime, batch: int) -> int:
    """Recompute every worker whose grace period ended by `now`; returns how many."""
    return await _drain(
        database,
        ladder,
        now=now,
        batch=batch,
        claim=lambda db: repository.claim_due(db, now=now, batch=batch),
    )


async def run_once(app: FastAPI) -> int:
    settings = app.state.settings
    database: Database = app.state.database
    ladder = Ladder.from_settings(settings)
    now = app_now(app)
    done = await recompute_queued(database, ladder, now=now, batch=settings.level_batch)
    return done + await apply_due_falls(database, ladder, now=now, batch=settings.level_batch)


async def run_levels_loop(app: FastAPI, *, interval: float) -> None:
    while True:
        try:
            done = await run_once(app)
            if done:
                log.debug("recomputed %d worker levels", done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be restarting: try again next round
            if is_database_outage(exc):
                log.warning("worker levels failed, database unavailable: %s", describe_error(exc))
            else:
                log.exception("worker levels failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def levels_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the loop for the app's lifetime (inside base_lifespan, so the pools exist)."""
    interval = app.state.settings.level_interval_seconds
    task: asyncio.Task[None] | None = None
    if interval > 0:
        task = asyncio.create_task(run_levels_loop(app, interval=interval), name="worker-levels")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
