"""The daily rejection cap: of one requester's rejections of one worker in one UTC day only the
first 5 count toward the worker's standing, exactly, whatever the mix of concurrent single
rejects and bulk reviews; overturned rejections stop counting at once."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from services.tasks.lifecycle.reject import REJECT_SQL
from shared.database import HOT_PATH_SERVER_SETTINGS
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import approve, cat_tasks, published_project, reject
from tests.services.tasks.appeals.helpers import (
    REJECTION,
    clock_at,
    expected,
    review,
    standing,
    submit_many,
    tomorrow_at_noon,
)

CAP = 5


async def _excluded(db, ids: list[str]) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM assignments WHERE id = ANY($1::text[]) AND standing_excluded", ids
    )


async def test_fifty_rejections_in_one_day_move_the_rate_by_five_per_requester_and_day(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    worker = await create_worker(workers_client)
    first = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(63)
    )
    ids = await submit_many(tasks_client, worker, first.id, 63)
    approved, rejected_today, tomorrow = ids[:10], ids[10:60], ids[60:]
    await review(tasks_client, first.requester, approve=approved)
    assert await standing(workers_client, worker) == expected(10, 0)

    # 50 rejections at once: 30 single rejects racing 4 bulk reviews of 5
    singles, bulks = rejected_today[:30], rejected_today[30:]
    answers = await asyncio.gather(
        *(reject(tasks_client, first.requester, i, feedback=REJECTION) for i in singles),
        *(review(tasks_client, first.requester, reject=bulks[k : k + 5]) for k in range(0, 20, 5)),
    )
    assert all(a.status_code == 200 for a in answers[:30]), [a.text for a in answers[:30]]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM assignments WHERE id = ANY($1::text[]) AND status = 'rejected'",
            rejected_today,
        )
        == 50
    )
    assert await _excluded(db, rejected_today) == 50 - CAP
    assert (
        await db.fetchval(
            "SELECT rejections FROM daily_rejection_counts"
            " WHERE requester_id = $1 AND worker_id = $2",
            first.requester.id,
            worker.id,
        )
        == 50
    )
    # exactly 5 rejections' worth, in both places the workers service shows standing
    assert await standing(workers_client, worker) == expected(10, CAP)
    # a repeated reject changes nothing, counted or not
    again = await reject(tasks_client, first.requester, rejected_today[0])
    assert again.status_code == 200 and again.json()["status"] == "rejected"
    assert await standing(workers_client, worker) == expected(10, CAP)

    # another requester's rejections are counted on their own (7 in one bulk review: 5 count)
    second = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(7)
    )
    others = await submit_many(tasks_client, worker, second.id, 7)
    await review(tasks_client, second.requester, reject=others)
    assert await _excluded(db, others) == 7 - CAP
    assert await standing(workers_client, worker) == expected(10, 2 * CAP)

    # a new UTC day counts again
    with clock_at(apps["tasks"], tomorrow_at_noon()):
        results = await asyncio.gather(
            *(reject(tasks_client, first.requester, i) for i in tomorrow)
        )
    assert all(r.status_code == 200 for r in results)
    assert await _excluded(db, tomorrow) == 0
    assert await standing(workers_client, worker) == expected(10, 2 * CAP + 3)


async def test_overturned_rejections_stop_counting_and_capped_ones_count_as_approvals(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    worker = await create_worker(workers_client)
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(8), extra_funds_cents=1_000
    )
    ids = await submit_many(tasks_client, worker, project.id, 8)
    for i in ids[:7]:  # one by one: the first five count, the last two do not
        assert (await reject(tasks_client, project.requester, i)).status_code == 200
    counted, capped = ids[:5], ids[5:7]
    assert await _excluded(db, counted) == 0 and await _excluded(db, capped) == 2
    assert await standing(workers_client, worker) == expected(0, 5)

    # a counted rejection overturned: one rejection fewer, one approval more
    assert (await approve(tasks_client, project.requester, counted[0])).status_code == 200
    assert await standing(workers_client, worker) == expected(1, 4)
    # a capped one overturned: an approval like any other from now on
    assert (await approve(tasks_client, project.requester, capped[0])).status_code == 200
    assert await _excluded(db, capped[:1]) == 0
    assert await standing(workers_client, worker) == expected(2, 4)
    # the cap counts rejections given: an overturn gives no place back
    assert (await reject(tasks_client, project.requester, ids[7])).status_code == 200
    assert await _excluded(db, ids[7:]) == 1
    assert await standing(workers_client, worker) == expected(2, 4)


async def test_a_flag_flip_on_a_decided_row_moves_the_counters_by_exactly_that_row(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """The stats trigger: a standing_excluded row never counts; flipping the flag adds or takes
    away exactly that row's indicators (submitted, approved, rejected)."""
    worker = await create_worker(workers_client)
    requester = await create_requester(workers_client)
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), requester=requester
    )
    ids = await submit_many(tasks_client, worker, project.id, 3)
    await review(tasks_client, requester, approve=[ids[0]], reject=[ids[1]])

    async def counters() -> tuple[int, int, int]:
        me = (await workers_client.get("/v1/workers/me", headers=worker.headers)).json()
        return me["submitted_count"], me["approved_count"], me["rejected_count"]

    async def flag(assignment_id: str, value: bool) -> None:
        await db.execute(
            "UPDATE assignments SET standing_excluded = $2 WHERE id = $1", assignment_id, value
        )

    assert await counters() == (3, 1, 1)
    await flag(ids[0], True)
    assert await counters() == (2, 0, 1)
    await flag(ids[1], True)
    assert await counters() == (1, 0, 0)
    await flag(ids[2], True)  # submitted, pending review
    assert await counters() == (0, 0, 0)
    await flag(ids[0], True)  # no flip: nothing moves
    assert await counters() == (0, 0, 0)
    # an excluded row changing status counts nothing either
    await db.execute("UPDATE assignments SET status = 'approved' WHERE id = $1", ids[2])
    assert await counters() == (0, 0, 0)
    for i in ids:
        await flag(i, False)
    assert await counters() == (3, 2, 1)


class _RolledBack(Exception):
    pass


# A marketplace's worth of assignments for the planner's statistics (rolled back with them):
# 2,000 workers x 10 answers (one per task) under 200 projects, a third awaiting review.
_CROWD_SQL = """
INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id, status,
                         reward_cents, fee_cents, deadline, submitted_at)
SELECT 'PLAN' || lpad(i::text, 12, '0'), ($1::text[])[1 + i % 10], 'P' || (i % 200),
       'R' || (i % 50), 'W' || (i / 10), (ARRAY['submitted', 'approved', 'approved'])[1 + i % 3],
       10, 2, now() + interval '1 hour', now()
FROM generate_series(1, 20000) AS i
"""


async def test_the_reject_statement_probes_assignments_by_key_only(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, database_url: str
) -> None:
    """REJECT_SQL as the hot pool plans it (one generic plan, no sequential scans) over a table
    of realistic statistics: every read of assignments probes one row by a unique key, (id) or
    (worker_id, id), all its columns bound: never a walk over the submitted rows or a skip scan
    over workers or projects."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(10)
    )
    conn = await asyncpg.connect(database_url, server_settings=HOT_PATH_SERVER_SETTINGS)
    try:
        async with conn.transaction():
            await conn.execute(_CROWD_SQL, project.task_ids)
            await conn.execute("ANALYZE assignments")
            await conn.execute(
                "PREPARE fair_reject(text[], text[], text, date, int, int) AS " + REJECT_SQL
            )
            # plan_cache_mode = force_generic_plan: EXECUTE plans once, for any values
            explained = await conn.fetch(
                "EXPLAIN (COSTS OFF) EXECUTE fair_reject('{}', '{}', '', current_date, 5, 30)"
            )
            raise _RolledBack
    except _RolledBack:
        pass
    finally:
        await conn.close()
    plan = "\n".join(r[0] for r in explained)
    assert "$1" in plan, plan  # the generic plan
    lines = plan.splitlines()
    scans = [i for i, line in enumerate(lines) if "Scan" in line and " on assignments" in line]
    assert len(scans) == 2, plan  # the lock and the update
    for i in scans:
        scan, cond = lines[i], lines[i + 1]
        assert "Index Cond" in cond, plan
        if "using pk_assignments" in scan:
            assert "(id)::text =" in cond, plan
        else:
            assert "using ix_assignments_worker_id_id" in scan, plan
            assert "(worker_id)::text =" in cond and "(id)::text =" in cond, plan
    assert "Seq Scan" not in plan, plan
