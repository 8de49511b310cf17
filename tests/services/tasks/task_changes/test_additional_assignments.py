"""POST /v1/tasks/{id}/additional-assignments: more slots, their money reserved exactly once."""

from __future__ import annotations

import asyncio
import hashlib

import httpx

from tests.fixtures.accounts import create_requester
from tests.fixtures.task_changes import add_assignments, at, set_expiry
from tests.fixtures.tasks import (
    INTERNAL,
    accept,
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    held,
    published_project,
    submitted,
    wait_delivered,
    workers,
)


async def test_adds_slots_and_reserves_their_money(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=500
    )
    task_id = project.task_ids[0]
    before = await balance(payments_client, project.requester)

    resp = await add_assignments(tasks_client, project.requester, task_id, 2)
    assert resp.status_code == 200, resp.text
    task = resp.json()
    assert (task["max_assignments"], task["open_slots"], task["status"]) == (3, 3, "open")
    after = await balance(payments_client, project.requester)
    assert after["available"] == before["available"] - 2 * project.slot_cents
    assert after["reserved"] == before["reserved"] + 2 * project.slot_cents
    assert await held(db, project.id) == 3 * project.slot_cents

    # The new slots are claimable: three workers get the one task.
    crowd = await workers(workers_client, 3)
    works = [await accepted(tasks_client, w, project.id) for w in crowd]
    assert {w["task_id"] for w in works} == {task_id}
    await assert_ledger_ok(payments_client)


async def test_a_completed_task_opens_again(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=100
    )
    task_id = project.task_ids[0]
    alice, bob = await workers(workers_client, 2)
    done = await submitted(tasks_client, alice, project.id)
    assert (await approve(tasks_client, project.requester, done["id"])).status_code == 200
    task = (
        await tasks_client.get(f"/v1/tasks/{task_id}", headers=project.requester.headers)
    ).json()
    assert task["status"] == "completed"

    resp = await add_assignments(tasks_client, project.requester, task_id, 1)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["open_slots"]) == ("open", 1)
    assert (await accepted(tasks_client, bob, project.id))["task_id"] == task_id
    assert (await accept(tasks_client, alice, project.id)).status_code == 404  # answered it


async def test_an_expired_task_only_grows_until_it_is_extended(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=300
    )
    task_id = project.task_ids[0]
    resp = await set_expiry(tasks_client, project.requester, task_id, "2020-01-01T00:00:00Z")
    assert resp.status_code == 200, resp.text
    await wait_delivered(db, [f"release:expire:{task_id}:0"], apps)
    before = await balance(payments_client, project.requester)
    resp = await add_assignments(tasks_client, project.requester, task_id, 2)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["max_assignments"], resp.json()["open_slots"]) == (
        "expired",
        3,
        0,
    )
    assert await balance(payments_client, project.requester) == before  # nothing held for it

    # Extended, its three slots open and are reserved.
    resp = await set_expiry(tasks_client, project.requester, task_id, at(3600))
    assert (resp.json()["status"], resp.json()["open_slots"]) == ("open", 3)
    after = await balance(payments_client, project.requester)
    assert after["reserved"] == before["reserved"] + 3 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_without_the_money_nothing_changes(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=1
    )
    task_id = project.task_ids[0]
    before = await balance(payments_client, project.requester)
    resp = await add_assignments(tasks_client, project.requester, task_id, 1)
    assert resp.status_code == 402, resp.text
    assert resp.json()["code"] == "insufficient_funds"
    row = await db.fetchrow("SELECT max_assignments, open_slots FROM tasks WHERE id = $1", task_id)
    assert (row["max_assignments"], row["open_slots"]) == (1, 1)
    assert await balance(payments_client, project.requester) == before


async def test_bad_input_changes_nothing(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=[{"input": {"image_url": "https://img.example/1.jpg"}, "max_assignments": 98}],
        extra_funds_cents=10_000,
    )
    task_id = project.task_ids[0]
    stranger = await create_requester(workers_client)
    resp = await add_assignments(tasks_client, stranger, task_id, 1)
    assert (resp.status_code, resp.json()["code"]) == (404, "not_found")
    resp = await add_assignments(tasks_client, project.requester, "NOSUCHTASK", 1)
    assert resp.status_code == 404
    for count in (0, -1, 100, "2", 1.5, None):
        resp = await add_assignments(tasks_client, project.requester, task_id, count)
        assert (resp.status_code, resp.json().get("code")) == (422, "validation_error"), (
            count,
            resp.text,
        )
    resp = await add_assignments(tasks_client, project.requester, task_id, 3)  # 98 + 3 > 100
    assert (resp.status_code, resp.json()["code"]) == (422, "max_assignments_exceeded")
    assert resp.json()["errors"] == [{"loc": ["body", "count"], "msg": "at most 2 more"}]
    assert await db.fetchval("SELECT max_assignments FROM tasks WHERE id = $1", task_id) == 98
    resp = await add_assignments(tasks_client, project.requester, task_id, 2)  # exactly 100
    assert resp.status_code == 200 and resp.json()["max_assignments"] == 100

    worker = (await workers(workers_client, 1))[0]
    resp = await tasks_client.post(
        f"/v1/tasks/{task_id}/additional-assignments", json={"count": 1}, headers=worker.headers
    )
    assert resp.status_code == 403

    closed = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert closed.status_code == 200
    resp = await add_assignments(tasks_client, project.requester, task_id, 1)
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")


async def test_one_idempotency_key_raced_acts_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=5_000
    )
    task_id = project.task_ids[0]
    before = await balance(payments_client, project.requester)
    answers = await asyncio.gather(
        *(
            add_assignments(
                tasks_client, project.requester, task_id, 4, **{"Idempotency-Key": "more-4"}
            )
            for _ in range(4)
        )
    )
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    assert sorted(r.headers["Idempotent-Replayed"] for r in answers) == ["false"] + ["true"] * 3
    assert {r.json()["max_assignments"] for r in answers} == {5}
    after = await balance(payments_client, project.requester)
    assert after["reserved"] == before["reserved"] + 4 * project.slot_cents
    # The same key with another body is refused; a new key acts again.
    resp = await add_assignments(
        tasks_client, project.requester, task_id, 1, **{"Idempotency-Key": "more-4"}
    )
    assert (resp.status_code, resp.json()["code"]) == (409, "idempotency_key_reused")
    resp = await add_assignments(
        tasks_client, project.requester, task_id, 4, **{"Idempotency-Key": "more-4b"}
    )
    assert resp.json()["max_assignments"] == 9
    await assert_ledger_ok(payments_client)


async def test_racing_accepts_never_oversell_a_slot(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=1_000
    )
    task_id = project.task_ids[0]
    crowd = await workers(workers_client, 7)
    await accepted(tasks_client, crowd[0], project.id)  # the one slot is taken
    results = await asyncio.gather(
        add_assignments(tasks_client, project.requester, task_id, 3),
        *(accept(tasks_client, w, project.id) for w in crowd[1:]),
    )
    assert results[0].status_code == 200, results[0].text
    won = [r for r in results[1:] if r.status_code == 201]
    assert all(r.status_code in (201, 404) for r in results[1:])
    assert len(won) <= 3
    row = await db.fetchrow("SELECT max_assignments, open_slots FROM tasks WHERE id = $1", task_id)
    live = await db.fetchval(
        "SELECT count(*) FROM assignments WHERE task_id = $1 AND status = 'accepted'", task_id
    )
    assert row["max_assignments"] == 4
    assert live == 1 + len(won) and row["open_slots"] == 4 - live
    # Every slot, open or held, has its money held; nothing more.
    assert await held(db, project.id) == 4 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_a_retry_after_a_lost_commit_replays_the_reservation(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """The first try reserved at payments and then its own commit failed: the retry with the
    same Idempotency-Key adds the slots and holds their money once, not twice."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=500
    )
    task_id = project.task_ids[0]
    key = "extend-7"
    lost = await payments_client.post(
        "/internal/reservations",
        headers=INTERNAL,
        json={
            "key": f"add-assignments:{task_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}",
            "requester_id": project.requester.id,
            "project_id": project.id,
            "amount_cents": 2 * project.slot_cents,
        },
    )
    assert lost.status_code == 201, lost.text
    before = await balance(payments_client, project.requester)
    resp = await add_assignments(
        tasks_client, project.requester, task_id, 2, **{"Idempotency-Key": key}
    )
    assert resp.status_code == 200 and resp.json()["open_slots"] == 3
    assert await balance(payments_client, project.requester) == before
    assert await held(db, project.id) == 3 * project.slot_cents
