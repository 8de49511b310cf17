"""services/tasks/timers: each sweep acts on due rows exactly once, even racing itself.

The session's tasks processes (the in-process app and the live one) run their own timers with a
5 s grace; these tests make rows due by about a second and drive sweeps with runners of their own
(grace 0), so what happens to those rows is what the runners under test do, and the background
replicas only ever meet rows the tests are done with.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from services.tasks.timers.service import SWEEPS, TimerRunner, auto_approve_due, backlog
from shared.database import ReadDb, WriteDb
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    INTERNAL,
    accept,
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    held,
    open_slots,
    published_project,
    reject,
    submit,
    submitted,
    wait_delivered,
    workers,
)


def runner(apps: dict, **overrides: object) -> TimerRunner:
    """A timer runner on the in-process app's database, not started (tests drive it)."""
    settings: dict[str, object] = {
        "batch_size": 500,
        "poll_interval_seconds": 0.05,
        "grace_seconds": 0.0,
        "retention_seconds": 7 * 86_400,
        "error_backoff_seconds": 0.05,
        "error_backoff_cap_seconds": 0.5,
        "stop_timeout_seconds": 5.0,
        **overrides,
    }
    return TimerRunner(database=apps["tasks"].state.database, **settings)  # type: ignore[arg-type]


async def make_due(db: asyncpg.Pool, column: str, ids: list[str], seconds_ago: float = 1) -> None:
    table = "tasks" if column == "expires_at" else "assignments"
    await db.execute(
        f"UPDATE {table} SET {column} = now() - make_interval(secs => $2) WHERE id = ANY($1)",
        ids,
        seconds_ago,
    )


async def settle(db: asyncpg.Pool, apps: dict, project_id: str) -> None:
    keys = [
        r["key"]
        for r in await db.fetch(
            "SELECT key FROM outbox WHERE payload->>'project_id' = $1", project_id
        )
    ]
    await wait_delivered(db, keys, apps)


async def test_auto_approval_pays_each_assignment_once_with_racing_replicas(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(12), auto_approve_seconds=60
    )
    crowd = await workers(workers_client, 4)
    work = [await submitted(tasks_client, w, project.id) for w in crowd for _ in range(3)]
    ids = [a["id"] for a in work]
    by_hand = ids[0]
    assert (
        await approve(tasks_client, project.requester, by_hand, feedback="Great!")
    ).status_code == 200
    assert (await reject(tasks_client, project.requester, ids[1])).status_code == 200
    await make_due(db, "auto_approve_at", ids)

    # Four replicas with tiny batches race over the 10 due assignments.
    replicas = [runner(apps, batch_size=2) for _ in range(4)]
    acted = await asyncio.gather(*(r.drain("auto_approvals") for r in replicas))
    assert sum(acted) >= 10

    rows = await db.fetch(
        "SELECT id, status, feedback, reviewed_at, submitted_at FROM assignments"
        " WHERE project_id = $1",
        project.id,
    )
    status = {r["id"]: r["status"] for r in rows}
    assert status[ids[1]] == "rejected"  # decided by hand before it fell due: untouched
    assert all(status[i] == "approved" for i in ids if i != ids[1])
    auto = [r for r in rows if r["id"] not in (by_hand, ids[1])]
    assert all(r["feedback"] is None and r["reviewed_at"] >= r["submitted_at"] for r in auto)
    # Counters moved once per approval: a second action on one row would show here.
    assert (
        await db.fetchval("SELECT sum(approved_slots) FROM tasks WHERE project_id = $1", project.id)
        == 11
    )
    stats = await db.fetch(
        "SELECT worker_id, approved, rejected FROM gold_stats WHERE project_id = $1", project.id
    )
    assert sum(s["approved"] for s in stats) == 11 and sum(s["rejected"] for s in stats) == 1
    await settle(db, apps, project.id)
    payouts = await db.fetch(
        "SELECT assignment_id, count(*) AS n FROM ledger_transactions"
        " WHERE kind = 'payout' AND project_id = $1 GROUP BY assignment_id",
        project.id,
    )
    assert {p["assignment_id"] for p in payouts} == {i for i in ids if i != ids[1]}
    assert all(p["n"] == 1 for p in payouts)
    reward = 10
    earned = [(await balance(payments_client, w))["available"] for w in crowd]
    assert sum(earned) == 11 * reward
    # The rejected slot reopened with its money; everything else is paid.
    assert await held(db, project.id) == project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_auto_approval_and_a_manual_review_decide_each_assignment_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(20), auto_approve_seconds=60
    )
    crowd = await workers(workers_client, 4)
    work = [await submitted(tasks_client, w, project.id) for w in crowd for _ in range(5)]
    ids = [a["id"] for a in work]
    await make_due(db, "auto_approve_at", ids)

    sweeps = [runner(apps, batch_size=3).drain("auto_approvals") for _ in range(2)]
    rejects = [reject(tasks_client, project.requester, i) for i in ids]
    results = await asyncio.gather(*sweeps, *rejects)
    answers = results[2:]
    assert all(r.status_code in (200, 409) for r in answers), [r.text for r in answers]

    rows = {
        r["id"]: r["status"]
        for r in await db.fetch(
            "SELECT id, status FROM assignments WHERE project_id = $1", project.id
        )
    }
    for assignment_id, resp in zip(ids, answers, strict=True):
        if resp.status_code == 200:
            assert rows[assignment_id] == "rejected"
        else:
            assert resp.json()["code"] == "invalid_state" and rows[assignment_id] == "approved"
    n_approved = sum(s == "approved" for s in rows.values())
    n_rejected = sum(s == "rejected" for s in rows.values())
    assert n_approved + n_rejected == 20
    outbox_pays = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE key = ANY($1)", [f"pay:{i}" for i in ids]
    )
    assert outbox_pays == n_approved
    # Every rejected slot reopened once, every approved one was consumed once.
    assert await open_slots(db, project.id) == n_rejected
    assert (
        await db.fetchval("SELECT sum(approved_slots) FROM tasks WHERE project_id = $1", project.id)
        == n_approved
    )
    await settle(db, apps, project.id)
    assert await held(db, project.id) == n_rejected * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_deadline_sweep_reopens_the_slot_and_the_late_answer_is_refused(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    late, other = await create_worker(workers_client), await create_worker(workers_client)
    work = await accepted(tasks_client, late, project.id)
    sweep = runner(apps)

    await sweep.drain("assignment_deadlines")  # not due yet: untouched
    assert (
        await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["assignment_id"])
        == "accepted"
    )
    await make_due(db, "deadline", [work["assignment_id"]])
    assert await asyncio.gather(*(runner(apps).drain("assignment_deadlines") for _ in range(3)))
    row = await db.fetchrow(
        "SELECT status, ended_at FROM assignments WHERE id = $1", work["assignment_id"]
    )
    assert row["status"] == "expired" and row["ended_at"] is not None
    assert await open_slots(db, project.id) == 1  # reopened once, not three times

    resp = await submit(tasks_client, late, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 409 and resp.json()["code"] == "assignment_expired"
    second = await accepted(tasks_client, other, project.id)
    assert second["task_id"] == work["task_id"]
    assert await held(db, project.id) == project.slot_cents


async def test_deadline_sweep_releases_the_money_of_a_closed_projects_slot(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    await make_due(db, "deadline", [work["assignment_id"]])
    await runner(apps).drain("assignment_deadlines")
    assert await open_slots(db, project.id) == 0
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 0
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0 and money["available"] == 3 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_lifetime_sweep_releases_open_slots_once_and_live_work_ends_normally(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(3),
        assignments_per_task=2,
    )
    holder, finisher, newcomer = await workers(workers_client, 3)
    live = await accepted(tasks_client, holder, project.id)
    done = await submitted(tasks_client, finisher, project.id)
    # 6 slots: 1 live, 1 submitted, 4 open.
    await make_due(db, "expires_at", project.task_ids)

    acted = await asyncio.gather(
        *(runner(apps, batch_size=1).drain("task_lifetimes") for _ in range(3))
    )
    assert sum(acted) >= 3
    tasks = await db.fetch("SELECT status, open_slots FROM tasks WHERE project_id = $1", project.id)
    assert [(t["status"], t["open_slots"]) for t in tasks] == [("expired", 0)] * 3
    assert (await accept(tasks_client, newcomer, project.id)).status_code == 404
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 2 * project.slot_cents  # the live and submitted slots
    await runner(apps).drain("task_lifetimes")  # again: nothing of this project moves
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 2 * project.slot_cents  # released once

    # In-flight work ends as usual: the answer is paid from the hold, the return releases.
    assert (await approve(tasks_client, project.requester, done["id"])).status_code == 200
    resp = await tasks_client.post(
        f"/v1/assignments/{live['assignment_id']}/return", headers=holder.headers
    )
    assert resp.status_code == 200
    assert await open_slots(db, project.id) == 0
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 0
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0
    assert money["available"] == 5 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_retention_sweep_prunes_only_old_delivered_messages(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(4)
    )
    worker = await create_worker(workers_client)
    ids = [(await submitted(tasks_client, worker, project.id))["id"] for _ in range(3)]
    for assignment_id in ids:
        assert (await approve(tasks_client, project.requester, assignment_id)).status_code == 200
    keys = [f"pay:{i}" for i in ids]
    await wait_delivered(db, keys, apps)
    old, recent, parked = keys[0], keys[1], keys[2]
    await db.execute(
        "UPDATE outbox SET delivered_at = now() - interval '8 days' WHERE key = $1", old
    )
    # A message payments refused long ago stays for a human, however old.
    await db.execute(
        "UPDATE outbox SET delivered_at = NULL, parked_at = now() - interval '30 days',"
        " created_at = now() - interval '30 days' WHERE key = $1",
        parked,
    )
    # The live services' own timers run the same sweep and may get there first: what is
    # asserted is the outcome, not which sweeper pruned it.
    await runner(apps).drain("outbox_retention")
    left = {r["key"] for r in await db.fetch("SELECT key FROM outbox WHERE key = ANY($1)", keys)}
    assert left == {recent, parked}


async def test_a_batch_that_dies_before_its_commit_changes_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db, database_url
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), auto_approve_seconds=60
    )
    worker = await create_worker(workers_client)
    ids = [(await submitted(tasks_client, worker, project.id))["id"] for _ in range(3)]
    await make_due(db, "auto_approve_at", ids)

    # A replica claims and changes the batch, then its connection dies before the commit.
    doomed = await asyncpg.connect(database_url)
    try:
        tx = doomed.transaction()
        await tx.start()
        assert await auto_approve_due(WriteDb(doomed), limit=100, grace_seconds=0) >= 3
        pid = doomed.get_server_pid()
        assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        doomed.terminate()
    rows = await db.fetch("SELECT status FROM assignments WHERE id = ANY($1)", ids)
    assert [r["status"] for r in rows] == ["submitted"] * 3
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE key = ANY($1)", [f"pay:{i}" for i in ids]
        )
        == 0
    )

    # The rows are due again for the next replica, which acts once.
    assert await runner(apps).drain("auto_approvals") >= 3
    rows = await db.fetch("SELECT status FROM assignments WHERE id = ANY($1)", ids)
    assert [r["status"] for r in rows] == ["approved"] * 3
    await settle(db, apps, project.id)
    assert (await balance(payments_client, worker))["available"] == 3 * 10
    await assert_ledger_ok(payments_client)


async def test_grace_leaves_just_due_rows_to_the_request_paths(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    await make_due(db, "deadline", [work["assignment_id"]], seconds_ago=1)
    await runner(apps, grace_seconds=60).drain("assignment_deadlines")
    assert (
        await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["assignment_id"])
        == "accepted"
    )
    await runner(apps, grace_seconds=0.5).drain("assignment_deadlines")
    assert (
        await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["assignment_id"])
        == "expired"
    )


async def test_started_runner_drains_due_work_and_stops_cleanly(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(5), auto_approve_seconds=60
    )
    worker = await create_worker(workers_client)
    ids = [(await submitted(tasks_client, worker, project.id))["id"] for _ in range(5)]
    await make_due(db, "auto_approve_at", ids)
    loop = runner(apps, batch_size=2)
    loop.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while await db.fetchval(
            "SELECT count(*) FROM assignments WHERE id = ANY($1) AND status = 'submitted'", ids
        ):
            assert asyncio.get_running_loop().time() < deadline, "the loop did not drain"
            await asyncio.sleep(0.05)
        assert loop.running
    finally:
        await loop.stop()
    assert not loop.running
    stats = loop.stats({})
    assert set(stats.sweeps) == set(SWEEPS)
    assert stats.sweeps["auto_approvals"].acted >= 5
    assert stats.sweeps["auto_approvals"].failures == 0


async def test_timer_stats_need_the_internal_token(tasks_client: httpx.AsyncClient) -> None:
    assert (await tasks_client.get("/internal/timers/stats")).status_code == 401
    resp = await tasks_client.get("/internal/timers/stats", headers=INTERNAL)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["running"] is True
    assert set(body["sweeps"]) == set(SWEEPS)
    assert all(s["due_now"] >= 0 for s in body["sweeps"].values())


async def end_project_lifetime(db: asyncpg.Pool, project_id: str, seconds_ago: float = 1) -> None:
    """The project's lifetime ended: the tasks uploaded before publish (which inherit it) are
    due, as `make_due` does for a task's own expiry."""
    await db.execute(
        "UPDATE projects SET tasks_expire_at = now() - make_interval(secs => $2) WHERE id = $1",
        project_id,
        seconds_ago,
    )


async def test_lifetime_sweep_expires_tasks_inheriting_the_projects_lifetime_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(5),
        assignments_per_task=2,
        extra_funds_cents=10_000,
    )
    holder, finisher, newcomer = await workers(workers_client, 3)
    live = await accepted(tasks_client, holder, project.id)
    done = await submitted(tasks_client, finisher, project.id)
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/tasks",
        json={"tasks": cat_tasks(2)},
        headers=project.requester.headers,
    )
    assert resp.status_code == 201, resp.text
    later = resp.json()["task_ids"]  # their own lifetime, still running
    # 10 inheriting slots (1 live, 1 submitted, 8 open) + 4 open later ones.
    await end_project_lifetime(db, project.id)
    async with db.acquire() as conn:
        due = await backlog(ReadDb(conn), grace_seconds=0, retention_seconds=86_400)
    assert due["task_lifetimes"] >= 5

    acted = await asyncio.gather(
        *(runner(apps, batch_size=2).drain("task_lifetimes") for _ in range(3))
    )
    assert sum(acted) >= 5
    tasks = await db.fetch(
        "SELECT t.id, t.status, t.open_slots, t.expires_at = p.tasks_expire_at AS projects"
        " FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.project_id = $1",
        project.id,
    )
    by_id = {t["id"]: (t["status"], t["open_slots"], t["projects"]) for t in tasks}
    assert [by_id[i] for i in project.task_ids] == [("expired", 0, True)] * 5
    assert [by_id[i][:2] for i in later] == [("open", 2)] * 2
    assert await db.fetchval(
        "SELECT tasks_expiry_swept_at IS NOT NULL FROM projects WHERE id = $1", project.id
    )
    work = await accepted(tasks_client, newcomer, project.id)
    assert work["task_id"] in later
    await settle(db, apps, project.id)
    # Held: the live and submitted inheriting slots, the later tasks' 4 (one now live).
    assert await held(db, project.id) == 6 * project.slot_cents
    await runner(apps).drain("task_lifetimes")  # again: nothing of this project moves
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 6 * project.slot_cents  # released once

    # In-flight work ends as usual: the answer is paid from the hold, the return releases.
    assert (await approve(tasks_client, project.requester, done["id"])).status_code == 200
    resp = await tasks_client.post(
        f"/v1/assignments/{live['assignment_id']}/return", headers=holder.headers
    )
    assert resp.status_code == 200
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 4 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_lifetime_sweep_racing_close_releases_each_slot_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(40)
    )
    crowd = await workers(workers_client, 4)
    work = [await accepted(tasks_client, w, project.id) for w in crowd]
    await end_project_lifetime(db, project.id)

    close = tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    results = await asyncio.gather(
        close, *(runner(apps, batch_size=5).drain("task_lifetimes") for _ in range(3))
    )
    assert results[0].status_code == 200, results[0].text
    assert await open_slots(db, project.id) == 0
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 4 * project.slot_cents  # the live ones only
    for worker, assignment in zip(crowd, work, strict=True):
        resp = await tasks_client.post(
            f"/v1/assignments/{assignment['assignment_id']}/return", headers=worker.headers
        )
        assert resp.status_code == 200
    await runner(apps).drain("task_lifetimes")
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 0
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0 and money["available"] == 40 * project.slot_cents
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tasks WHERE project_id = $1 AND status = 'open'", project.id
        )
        == 0
    )
    await assert_ledger_ok(payments_client)


async def test_lifetime_sweep_finishes_a_project_only_once_none_of_its_tasks_is_left_open(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db, database_url
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(4)
    )
    await end_project_lifetime(db, project.id)
    busy = await asyncpg.connect(database_url)  # someone holds one task (an accept, say)
    try:
        tx = busy.transaction()
        await tx.start()
        await busy.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", project.task_ids[0])
        assert await runner(apps).drain("task_lifetimes") >= 3
        status = await db.fetchval("SELECT status FROM tasks WHERE id = $1", project.task_ids[0])
        assert status == "open"
        assert (
            await db.fetchval(
                "SELECT tasks_expiry_swept_at FROM projects WHERE id = $1", project.id
            )
            is None
        )  # still to be looked at
        await tx.rollback()
    finally:
        await busy.close()
    assert await runner(apps).drain("task_lifetimes") >= 1
    statuses = await db.fetch("SELECT status FROM tasks WHERE project_id = $1", project.id)
    assert [s["status"] for s in statuses] == ["expired"] * 4
    assert await db.fetchval(
        "SELECT tasks_expiry_swept_at IS NOT NULL FROM projects WHERE id = $1", project.id
    )
    await settle(db, apps, project.id)
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)
