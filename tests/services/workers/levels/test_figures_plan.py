"""The figures read bounded index ranges: a recompute costs the same for a worker with a few
answers or thousands (repository.FIGURES_SQL)."""

from __future__ import annotations

import json

import httpx

from services.workers.levels.repository import FIGURES_SQL
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.levels import add_answers


def _nodes(node: dict) -> list[dict]:
    out = [node]
    for child in node.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def test_the_windows_read_at_most_their_size_from_their_indexes(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    for status, gold in (("approved", None), ("rejected", True), ("approved", False)):
        await add_answers(
            db,
            worker_id=worker.id,
            requester_id=requester.id,
            status=status,
            count=1_500,
            gold_correct=gold,
        )
    await db.execute("ANALYZE assignments")
    raw = await db.fetchval(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + FIGURES_SQL, worker.id, 1_000, 200
    )
    plan = json.loads(raw)[0]["Plan"]
    scans = {
        n["Index Name"]: n
        for n in _nodes(plan)
        if n.get("Relation Name") == "assignments" and "Index Name" in n
    }
    # The windows are read along their indexes and stop at their size, out of the worker's
    # 4,500 answers (the general pool's planner settings: no sequential scan forced off).
    decided = scans["ix_assignments_worker_decided"]
    gold = scans["ix_assignments_worker_gold"]
    assert decided["Node Type"] == "Index Only Scan" and decided["Actual Rows"] == 1_000
    assert gold["Node Type"] == "Index Only Scan" and gold["Actual Rows"] == 200
    # No walk over the worker's answers; a small side table (stats deltas, tests passed) may
    # be scanned whole where the planner finds that cheaper, as it does in a busy test database.
    assert not [
        n
        for n in _nodes(plan)
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "assignments"
    ]
