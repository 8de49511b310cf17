"""Worker stats counters: exact at every moment, deadlock-free, compacted in the background."""

from __future__ import annotations

import asyncio
import random

import httpx

from services.workers.stats.compaction import compact_all, compact_once
from shared.database import WriteDb
from shared.eligibility import fetch_worker_stats
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import (
    insert_assignments,
    set_assignment_status,
    true_counts,
)

STATUSES = ("accepted", "submitted", "approved", "rejected", "returned", "expired")


async def _counters(db, worker_id: str) -> dict[str, int]:
    async with db.acquire() as conn:
        stats = await fetch_worker_stats(conn, worker_id)
    return {
        "submitted_count": stats.submitted,
        "approved_count": stats.approved,
        "rejected_count": stats.rejected,
    }


async def test_counters_match_the_assignments_after_every_change(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    other = await create_worker(workers_client)
    rng = random.Random(20261127)
    ids = await insert_assignments(
        db, requester_id=requester.id, worker_id=worker.id, statuses=["accepted"] * 12
    )
    for step in range(60):
        assignment_id = rng.choice(ids)
        await set_assignment_status(db, assignment_id, rng.choice(STATUSES))
        if step == 20:
            # moving an assignment to another worker moves its counts too
            await db.execute(
                "UPDATE assignments SET worker_id = $2 WHERE id = $1", ids[0], other.id
            )
        if step % 15 == 0:
            await compact_all(apps["workers"].state.database, batch=7)
        assert await _counters(db, worker.id) == await true_counts(db, worker.id), step
        assert await _counters(db, other.id) == await true_counts(db, other.id), step
    await db.execute("DELETE FROM assignments WHERE id = $1", ids[1])
    assert await _counters(db, worker.id) == await true_counts(db, worker.id)


async def test_compaction_folds_deltas_without_changing_totals(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    ids = await insert_assignments(
        db, requester_id=requester.id, worker_id=worker.id, statuses=["submitted"] * 5
    )
    for assignment_id in ids[:3]:
        await set_assignment_status(db, assignment_id, "approved")
    expected = await true_counts(db, worker.id)
    assert await _counters(db, worker.id) == expected
    left = -1
    for _ in range(50):  # the live process's own loop may hold the compaction lock for a moment
        await compact_all(apps["workers"].state.database, batch=2)
        left = await db.fetchval(
            "SELECT count(*) FROM worker_stats_deltas WHERE worker_id = $1", worker.id
        )
        if left == 0:
            break
        await asyncio.sleep(0.1)
    assert left == 0
    row = await db.fetchrow(
        """SELECT submitted_count, approved_count, rejected_count
           FROM worker_stats WHERE worker_id = $1""",
        worker.id,
    )
    assert dict(row) == expected == await _counters(db, worker.id)


async def test_only_one_compactor_runs_at_a_time(db) -> None:
    async with db.acquire() as holder, db.acquire() as contender:
        async with holder.transaction():
            await compact_once(WriteDb(holder), batch=1)  # takes the advisory lock until commit
            async with contender.transaction():
                assert await compact_once(WriteDb(contender), batch=10_000) == 0


async def test_reviews_in_opposite_orders_do_not_deadlock(
    workers_client: httpx.AsyncClient, db
) -> None:
    """Two bulk reviews touching the same two workers in opposite orders: with one locked
    counter row per worker this deadlocks; insert-only deltas take no shared lock."""
    requester = await create_requester(workers_client)
    w1 = await create_worker(workers_client)
    w2 = await create_worker(workers_client)
    a1, a4 = await insert_assignments(
        db, requester_id=requester.id, worker_id=w1.id, statuses=["submitted", "submitted"]
    )
    a2, a3 = await insert_assignments(
        db, requester_id=requester.id, worker_id=w2.id, statuses=["submitted", "submitted"]
    )
    update = "UPDATE assignments SET status = 'approved' WHERE id = $1"
    async with db.acquire() as t1, db.acquire() as t2:
        tx1, tx2 = t1.transaction(), t2.transaction()
        await tx1.start()
        await tx2.start()
        await t1.execute(update, a1)  # w1
        await t2.execute(update, a2)  # w2
        # each now touches the other's worker; must not wait on each other
        await asyncio.wait_for(
            asyncio.gather(t1.execute(update, a3), t2.execute(update, a4)), timeout=5
        )
        await tx1.commit()
        await tx2.commit()
    for worker in (w1, w2):
        counts = await _counters(db, worker.id)
        assert counts == await true_counts(db, worker.id)
        assert counts["approved_count"] == 2


async def test_concurrent_status_changes_keep_counts_exact(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    ids = await insert_assignments(
        db, requester_id=requester.id, worker_id=worker.id, statuses=["submitted"] * 40
    )
    rng = random.Random(7)
    decisions = [(i, rng.choice(("approved", "rejected"))) for i in ids]
    await asyncio.gather(*(set_assignment_status(db, i, s) for i, s in decisions))
    counts = await _counters(db, worker.id)
    assert counts == await true_counts(db, worker.id)
    assert counts["approved_count"] == sum(s == "approved" for _, s in decisions)
