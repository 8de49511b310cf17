"""services/tasks/lifecycle/slots.py and task_lifetime.py: where a slot and its money go when
work ends unpaid, under races."""

from __future__ import annotations

import asyncio

import httpx

from services.tasks.lifecycle.task_lifetime import release_expired_task
from tests.fixtures.tasks import (
    accepted,
    assert_ledger_ok,
    balance,
    cat_tasks,
    held,
    open_slots,
    published_project,
    wait_delivered,
    workers,
)


async def settle_outbox(db, apps: dict, project_id: str) -> None:
    keys = [
        r["key"]
        for r in await db.fetch(
            "SELECT key FROM outbox WHERE payload->>'project_id' = $1", project_id
        )
    ]
    await wait_delivered(db, keys, apps)


async def test_returns_racing_close_release_every_cent_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(30)
    )
    crowd = await workers(workers_client, 20)
    work = [await accepted(tasks_client, w, project.id) for w in crowd]

    async def give_back(worker, assignment) -> int:
        resp = await tasks_client.post(
            f"/v1/assignments/{assignment['assignment_id']}/return", headers=worker.headers
        )
        return resp.status_code

    close = tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    results = await asyncio.gather(
        close, *(give_back(w, a) for w, a in zip(crowd, work, strict=True))
    )
    assert results[0].status_code == 200, results[0].text
    assert results[1:] == [200] * 20
    assert await open_slots(db, project.id) == 0
    await settle_outbox(db, apps, project.id)
    assert await held(db, project.id) == 0
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0 and money["available"] == 30 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_an_expired_task_releases_its_open_slots_and_later_its_live_ones(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2), assignments_per_task=3
    )
    crowd = await workers(workers_client, 2)
    first = await accepted(tasks_client, crowd[0], project.id)
    task_id = first["task_id"]
    database = apps["tasks"].state.database

    async with database.transaction() as tx:  # not past its lifetime yet: nothing happens
        assert await release_expired_task(tx, task_id=task_id) == 0
    await db.execute(
        "UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1", task_id
    )

    # Before the timer runs, a slot given back is already released, not reopened.
    second = await accepted(tasks_client, crowd[1], project.id)
    assert second["task_id"] != task_id  # the expired task is no longer offered
    async with database.transaction() as tx:
        released = await release_expired_task(tx, task_id=task_id)
    assert released == 2 * project.slot_cents  # its 2 open slots; the live one stays held
    row = await db.fetchrow("SELECT status, open_slots FROM tasks WHERE id = $1", task_id)
    assert (row["status"], row["open_slots"]) == ("expired", 0)
    async with database.transaction() as tx:  # once only
        assert await release_expired_task(tx, task_id=task_id) == 0

    resp = await tasks_client.post(
        f"/v1/assignments/{first['assignment_id']}/return", headers=crowd[0].headers
    )
    assert resp.status_code == 200
    assert await db.fetchval("SELECT open_slots FROM tasks WHERE id = $1", task_id) == 0
    await settle_outbox(db, apps, project.id)
    # Left held: the other task's 3 slots (one of them live).
    assert await held(db, project.id) == 3 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_a_task_past_its_projects_lifetime_releases_given_back_slots_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """A task uploaded before publish expires with its project's lifetime: after it, a slot
    given back is released instead of reopened, even before the timer expired the task."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=3
    )
    crowd = await workers(workers_client, 2)
    first = await accepted(tasks_client, crowd[0], project.id)
    second = await accepted(tasks_client, crowd[1], project.id)
    task_id = first["task_id"]
    database = apps["tasks"].state.database
    async with database.transaction() as tx:  # not past its lifetime yet: nothing happens
        assert await release_expired_task(tx, task_id=task_id) == 0
    await db.execute(
        "UPDATE projects SET tasks_expire_at = now() - interval '1 second' WHERE id = $1",
        project.id,
    )

    resp = await tasks_client.post(
        f"/v1/assignments/{first['assignment_id']}/return", headers=crowd[0].headers
    )
    assert resp.status_code == 200
    assert await open_slots(db, project.id) == 1  # released, not reopened
    async with database.transaction() as tx:
        released = await release_expired_task(tx, task_id=task_id)
    assert released == project.slot_cents  # its one open slot; the live one stays held
    row = await db.fetchrow(
        "SELECT t.status, t.open_slots, t.expires_at = p.tasks_expire_at AS projects"
        " FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = $1",
        task_id,
    )
    assert tuple(row.values()) == ("expired", 0, True)
    async with database.transaction() as tx:  # once only
        assert await release_expired_task(tx, task_id=task_id) == 0
    await settle_outbox(db, apps, project.id)
    assert await held(db, project.id) == project.slot_cents  # the second worker's
    resp = await tasks_client.post(
        f"/v1/assignments/{second['assignment_id']}/return", headers=crowd[1].headers
    )
    assert resp.status_code == 200
    await settle_outbox(db, apps, project.id)
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_the_lifetime_sweep_reads_no_task_when_no_project_is_due(workers_client, db) -> None:
    """A live project of 20,000 tasks inheriting its expiry, due tomorrow: the sweep of
    inheriting tasks (run every timer tick) must not read the tasks table. With
    `project_id = ANY (due ids)` the planner chose a sequential scan of all tasks, ~50 ms per
    tick under the bench's load, whether a project was due or not."""
    from services.tasks.lifecycle import task_lifetime
    from shared.ids import new_id
    from tests.fixtures.accounts import create_requester

    requester = await create_requester(workers_client)
    project_id = new_id()
    async with db.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO projects (id, requester_id, status, title, task_type, labels,
                reward_cents, fee_cents, assignments_per_task, assignment_duration_seconds,
                lifetime_seconds, auto_approve_seconds, published_at, tasks_expire_at)
            VALUES ($1, $2, 'published', 'sweep probe', 'classification', '["a", "b"]',
                5, 1, 1, 60, 86400, 3600, now(), now() + interval '1 day')
            """,
            project_id,
            requester.id,
        )
        await conn.execute(
            """
            INSERT INTO tasks (id, project_id, requester_id, input, max_assignments, open_slots)
            SELECT $1 || '-' || g, $1, $2, '{}', 1, 1 FROM generate_series(1, 20000) g
            """,
            project_id,
            requester.id,
        )
        await conn.execute("ANALYZE tasks; ANALYZE projects")
        try:
            async with conn.transaction():
                # Other tests' projects may be due right now: out of the picture, rolled back.
                await conn.execute(
                    "UPDATE projects SET tasks_expiry_swept_at = now() "
                    "WHERE id <> $1 AND tasks_expiry_swept_at IS NULL",
                    project_id,
                )
                plan = "\n".join(
                    r[0]
                    for r in await conn.fetch(
                        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) "
                        + task_lifetime._EXPIRE_DUE_INHERITING_TASKS,
                        500,
                        0.0,
                    )
                )
                raise _RolledBack
        except _RolledBack:
            pass
        finally:
            await conn.execute("UPDATE projects SET status = 'closed' WHERE id = $1", project_id)
    task_scans = [line for line in plan.splitlines() if "Scan" in line and " on tasks" in line]
    assert task_scans, plan
    assert all("never executed" in line for line in task_scans), plan


class _RolledBack(Exception):
    pass
