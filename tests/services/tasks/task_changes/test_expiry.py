"""PATCH /v1/tasks/{id} {expires_at}: extend, shorten, expire now, reopen; money exactly once."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx

from services.tasks.lifecycle.task_lifetime import expire_due_tasks
from tests.fixtures.accounts import create_requester
from tests.fixtures.projects import add_tasks, create_project, publish
from tests.fixtures.task_changes import at, set_expiry
from tests.fixtures.tasks import (
    PROJECT_DEFAULTS,
    accept,
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    held,
    published_project,
    submit,
    wait_delivered,
    workers,
)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_extend_and_shorten_move_the_expiry_only(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    task_id = project.task_ids[0]
    before = await balance(payments_client, project.requester)
    for seconds in (7 * 86_400, 120):  # extend, then shorten (still ahead)
        target = at(seconds)
        resp = await set_expiry(tasks_client, project.requester, task_id, target)
        assert resp.status_code == 200, resp.text
        assert _time(resp.json()["expires_at"]) == _time(target)
        assert (resp.json()["status"], resp.json()["open_slots"]) == ("open", 1)
    # The other task still inherits the project's expiry.
    other = await db.fetchval("SELECT expires_at FROM tasks WHERE id = $1", project.task_ids[1])
    assert other is None
    assert await balance(payments_client, project.requester) == before


async def test_expire_now_releases_open_slots_once_and_in_flight_work_finishes(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=3
    )
    task_id = project.task_ids[0]
    alice, bob, carol = await workers(workers_client, 3)
    first = await accepted(tasks_client, alice, project.id)
    second = await accepted(tasks_client, bob, project.id)
    before = await balance(payments_client, project.requester)

    # Two concurrent "expire now" (one in the past, one this instant): one release.
    answers = await asyncio.gather(
        set_expiry(tasks_client, project.requester, task_id, "1970-01-01T00:00:00Z"),
        set_expiry(tasks_client, project.requester, task_id, at(0)),
    )
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    task = answers[0].json()
    assert (task["status"], task["open_slots"]) == ("expired", 0)
    await wait_delivered(db, [f"release:expire:{task_id}:0"], apps)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE key LIKE $1", f"%{task_id}%") == 1
    after = await balance(payments_client, project.requester)
    assert after["available"] == before["available"] + project.slot_cents  # the one open slot
    assert (await accept(tasks_client, carol, project.id)).status_code == 404

    # In flight: the holder still submits and is paid from the hold; a return releases.
    resp = await submit(tasks_client, alice, first["assignment_id"], {"label": "cat"})
    assert resp.status_code == 200, resp.text
    assert (
        await approve(tasks_client, project.requester, first["assignment_id"])
    ).status_code == 200
    resp = await tasks_client.post(
        f"/v1/assignments/{second['assignment_id']}/return", headers=bob.headers
    )
    assert resp.status_code == 200
    await wait_delivered(
        db, [f"pay:{first['assignment_id']}", f"release:slot:{second['assignment_id']}"], apps
    )
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_a_reopened_task_expires_again_under_a_new_key(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """The lifetime sweep expires it (key of its first life), it is extended (reserved again),
    and swept again: the second release carries its `reopened_count`, so both move money."""
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1),
        assignments_per_task=2,
        extra_funds_cents=1_000,
    )
    task_id = project.task_ids[0]
    alice = (await workers(workers_client, 1))[0]
    work = await accepted(tasks_client, alice, project.id)
    database = apps["tasks"].state.database

    async def sweep_now() -> None:
        await db.execute(
            "UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1", task_id
        )
        async with database.transaction() as tx:
            expired, released = await expire_due_tasks(tx, limit=100)
        assert (expired, released) == (1, project.slot_cents)

    await sweep_now()
    first_key = f"release:tasks:{project.id}:{task_id}"
    await wait_delivered(db, [first_key], apps)

    resp = await set_expiry(tasks_client, project.requester, task_id, at(3600))
    assert resp.status_code == 200, resp.text
    # One slot is Alice's (still held); the other opens again and is reserved again.
    assert (resp.json()["status"], resp.json()["open_slots"]) == ("open", 1)
    assert await held(db, project.id) == 2 * project.slot_cents
    assert await db.fetchval("SELECT reopened_count FROM tasks WHERE id = $1", task_id) == 1

    await sweep_now()
    await wait_delivered(db, [f"{first_key}:1"], apps)
    assert await held(db, project.id) == project.slot_cents  # Alice's slot only
    resp = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/return", headers=alice.headers
    )
    assert resp.status_code == 200
    await wait_delivered(db, [f"release:slot:{work['assignment_id']}"], apps)
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_reopening_without_the_money_changes_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    task_id = project.task_ids[0]
    await set_expiry(tasks_client, project.requester, task_id, at(-60))
    await wait_delivered(db, [f"release:expire:{task_id}:0"], apps)
    assert (await balance(payments_client, project.requester))["available"] == project.slot_cents
    # A second project of the same price takes that money.
    other = await create_project(tasks_client, project.requester, **PROJECT_DEFAULTS)
    await add_tasks(tasks_client, project.requester, other["id"], cat_tasks(1))
    await publish(tasks_client, project.requester, other["id"])
    before = await balance(payments_client, project.requester)
    assert before["available"] == 0

    resp = await set_expiry(tasks_client, project.requester, task_id, at(3600))
    assert (resp.status_code, resp.json()["code"]) == (402, "insufficient_funds")
    row = await db.fetchrow(
        "SELECT status, open_slots, reopened_count, expires_at < now() AS past FROM tasks "
        "WHERE id = $1",
        task_id,
    )
    assert dict(row) == {"status": "expired", "open_slots": 0, "reopened_count": 0, "past": True}
    assert await balance(payments_client, project.requester) == before
    await assert_ledger_ok(payments_client)


async def test_bad_input_and_other_states(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    task_id = project.task_ids[0]
    stranger = await create_requester(workers_client)
    resp = await set_expiry(tasks_client, stranger, task_id, at(60))
    assert (resp.status_code, resp.json()["code"]) == (404, "not_found")
    for value in (None, "soon", "2026-12-05T10:00:00", 12, at(366 * 86_400)):
        resp = await set_expiry(tasks_client, project.requester, task_id, value)
        assert (resp.status_code, resp.json().get("code")) == (422, "validation_error"), value
    resp = await tasks_client.patch(
        f"/v1/tasks/{task_id}",
        json={"expires_at": at(60), "max_assignments": 3},
        headers=project.requester.headers,
    )
    assert resp.status_code == 422
    row = await db.fetchrow("SELECT status, expires_at FROM tasks WHERE id = $1", task_id)
    assert (row["status"], row["expires_at"]) == ("open", None)

    closed = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert closed.status_code == 200
    resp = await set_expiry(tasks_client, project.requester, task_id, at(60))
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    resp = await set_expiry(tasks_client, project.requester, task_id, at(-60))
    assert resp.status_code == 200  # nothing is claimable in a closed project: a no-op


async def test_a_draft_task_expires_and_reopens_without_money(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    requester = await create_requester(workers_client)
    resp = await tasks_client.post(
        "/v1/projects",
        json={
            "title": "Draft",
            "description": "d",
            "instructions": "i",
            "keywords": [],
            "task_type": "classification",
            "labels": ["cat", "dog"],
            "reward": "0.10",
            "assignments_per_task": 2,
            "assignment_duration_seconds": 600,
            "lifetime_seconds": 86_400,
        },
        headers=requester.headers,
    )
    project_id = resp.json()["id"]
    resp = await tasks_client.post(
        f"/v1/projects/{project_id}/tasks", json={"tasks": cat_tasks(2)}, headers=requester.headers
    )
    task_id = resp.json()["task_ids"][0]
    resp = await set_expiry(tasks_client, requester, task_id, at(-1))
    assert (resp.json()["status"], resp.json()["open_slots"]) == ("expired", 0)
    project = (
        await tasks_client.get(f"/v1/projects/{project_id}", headers=requester.headers)
    ).json()
    assert project["counts"]["open_slots"] == 2  # publish would reserve the other task only
    resp = await set_expiry(tasks_client, requester, task_id, at(3600))
    assert (resp.json()["status"], resp.json()["open_slots"]) == ("open", 2)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE key LIKE $1", f"%{task_id}%") == 0


async def test_expiring_while_workers_accept_releases_exactly_the_unclaimed_slots(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=5
    )
    task_id = project.task_ids[0]
    crowd = await workers(workers_client, 5)
    results = await asyncio.gather(
        *(accept(tasks_client, w, project.id) for w in crowd[:3]),
        set_expiry(tasks_client, project.requester, task_id, at(-1)),
        *(accept(tasks_client, w, project.id) for w in crowd[3:]),
    )
    assert results[3].status_code == 200, results[3].text
    accepts = [r for i, r in enumerate(results) if i != 3]
    assert all(r.status_code in (201, 404) for r in accepts), [r.text for r in accepts]
    won = sum(r.status_code == 201 for r in accepts)
    live = await db.fetchval(
        "SELECT count(*) FROM assignments WHERE task_id = $1 AND status = 'accepted'", task_id
    )
    assert live == won
    row = await db.fetchrow("SELECT status, open_slots FROM tasks WHERE id = $1", task_id)
    assert (row["status"], row["open_slots"]) == ("expired", 0)
    released = await db.fetchval(
        "SELECT (payload->>'amount_cents')::bigint FROM outbox WHERE key = $1",
        f"release:expire:{task_id}:0",
    )
    assert (released or 0) == (5 - won) * project.slot_cents
    if released:
        await wait_delivered(db, [f"release:expire:{task_id}:0"], apps)
    # What stays held is exactly the slots workers hold.
    assert await held(db, project.id) == won * project.slot_cents
    await assert_ledger_ok(payments_client)
