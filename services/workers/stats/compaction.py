"""Folds worker_stats_deltas into worker_stats in the background.

The trigger on `assignments` appends a delta row per counted status change (insert-only, so
concurrent reviews never contend for a counter row). Reads sum the compacted row and the deltas,
so they are exact whether or not this loop has run; the loop only keeps the delta rows per
worker few, so the read stays a couple of index probes. One compactor at a time (advisory lock):
deleting deltas and adding them to the counters happen in one transaction, which readers see
either entirely or not at all.

Every worker whose deltas a batch folds is queued for a level recompute in the same transaction
(`worker_level_queue`, services/workers/levels/loop.py): a changed count is what can move a
worker's level, so the levels loop recomputes exactly the touched workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from shared.database import Database, WriteDb
from shared.errors import describe_error, is_database_outage

log = logging.getLogger("workers.stats")

COMPACTION_LOCK_KEY = 0x5753_4354  # "WSCT": one compactor across every workers process

_COMPACT_SQL = """
WITH batch AS (
    SELECT id FROM worker_stats_deltas ORDER BY id LIMIT $1
), moved AS (
    DELETE FROM worker_stats_deltas d USING batch WHERE d.id = batch.id
    RETURNING d.worker_id, d.submitted, d.approved, d.rejected
), summed AS (
    SELECT worker_id, sum(submitted) AS s, sum(approved) AS a, sum(rejected) AS r
    FROM moved GROUP BY worker_id
), folded AS (
    INSERT INTO worker_stats AS ws
        (worker_id, submitted_count, approved_count, rejected_count, updated_at)
    SELECT worker_id, s, a, r, now() FROM summed ORDER BY worker_id
    ON CONFLICT (worker_id) DO UPDATE SET
        submitted_count = ws.submitted_count + excluded.submitted_count,
        approved_count = ws.approved_count + excluded.approved_count,
        rejected_count = ws.rejected_count + excluded.rejected_count,
        updated_at = now()
    RETURNING 1
), queued AS (
    INSERT INTO worker_level_queue (worker_id)
    SELECT worker_id FROM summed ORDER BY worker_id
    ON CONFLICT (worker_id) DO NOTHING
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM folded) AS workers
"""


_TRY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock($1)"


async def compact_once(db: WriteDb, *, batch: int) -> int:
    """Fold up to `batch` delta rows inside the caller's transaction; returns how many."""
    if not await db.fetchval(_TRY_LOCK_SQL, COMPACTION_LOCK_KEY):
        return 0  # another process is compacting right now
    moved = await db.fetchval(_COMPACT_SQL, batch)  # the first column: rows moved
    assert moved is not None
    return int(moved)


async def compact_all(database: Database, *, batch: int) -> int:
    """Drain the deltas, one committed transaction per batch."""
    total = 0
    while True:
        async with database.transaction() as db:
            moved = await compact_once(db, batch=batch)
        total += moved
        if moved < batch:
            return total


async def run_compaction_loop(database: Database, *, interval: float, batch: int) -> None:
    while True:
        try:
            moved = await compact_all(database, batch=batch)
            if moved:
                log.debug("folded %d worker stats deltas", moved)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be restarting: try again next round
            if is_database_outage(exc):  # expected: one line, no traceback
                log.warning(
                    "worker stats compaction failed, database unavailable: %s", describe_error(exc)
                )
            else:
                log.exception("worker stats compaction failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def stats_compaction_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the loop for the app's lifetime (inside base_lifespan, so the pools exist)."""
    settings = app.state.settings
    task: asyncio.Task[None] | None = None
    if settings.stats_compaction_interval_seconds > 0:
        task = asyncio.create_task(
            run_compaction_loop(
                app.state.database,
                interval=settings.stats_compaction_interval_seconds,
                batch=settings.stats_compaction_batch,
            ),
            name="worker-stats-compaction",
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
