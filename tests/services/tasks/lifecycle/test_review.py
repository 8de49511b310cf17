"""Approve, reject, override and bulk review, with the money checked at the payments service."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import orjson

from services.tasks.lifecycle.messages import payout_message
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    accept,
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    deposit,
    held,
    open_slots,
    published_project,
    reject,
    submitted,
    wait_delivered,
    workers,
)


async def payouts(db, assignment_id: str) -> list:
    return await db.fetch(
        "SELECT amount_cents, fee_cents, details FROM ledger_transactions"
        " WHERE kind = 'payout' AND assignment_id = $1",
        assignment_id,
    )


async def test_two_simultaneous_approves_pay_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    first, second = await asyncio.gather(
        approve(tasks_client, project.requester, work["id"]),
        approve(tasks_client, project.requester, work["id"], feedback="Nice work"),
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["status"] == second.json()["status"] == "approved"
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", f"pay:{work['id']}") == 1
    await wait_delivered(db, [f"pay:{work['id']}"], apps)
    paid = await payouts(db, work["id"])
    assert len(paid) == 1 and paid[0]["amount_cents"] == 10 and paid[0]["fee_cents"] == 2
    assert (await balance(payments_client, worker))["available"] == 10
    assert await held(db, project.id) == 0
    assert await db.fetchval("SELECT status FROM tasks WHERE id = $1", work["task_id"]) == (
        "completed"
    )
    third = await approve(tasks_client, project.requester, work["id"])
    assert third.status_code == 200
    await asyncio.sleep(0.1)
    assert len(await payouts(db, work["id"])) == 1
    await assert_ledger_ok(payments_client)


async def test_reject_reopens_the_slot_for_another_worker(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    first, second = await create_worker(workers_client), await create_worker(workers_client)
    work = await submitted(tasks_client, first, project.id)
    assert (await accept(tasks_client, second, project.id)).status_code == 404

    short = await reject(tasks_client, project.requester, work["id"], feedback="bad")
    assert short.status_code == 422
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["id"]) == (
        "submitted"
    )

    resp = await reject(tasks_client, project.requester, work["id"])
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "rejected" and body["feedback"].startswith("The label")
    assert await open_slots(db, project.id) == 1
    assert await held(db, project.id) == project.slot_cents  # still reserved for the slot

    again = await reject(tasks_client, project.requester, work["id"])
    assert again.status_code == 200 and again.json()["status"] == "rejected"
    assert await open_slots(db, project.id) == 1

    # The first worker may not retake it; another worker fills it and is paid.
    assert (await accept(tasks_client, first, project.id)).status_code == 404
    redo = await submitted(tasks_client, second, project.id)
    assert redo["task_id"] == work["task_id"]
    assert (await approve(tasks_client, project.requester, redo["id"])).status_code == 200
    await wait_delivered(db, [f"pay:{redo['id']}"], apps)
    assert (await balance(payments_client, second))["available"] == 10
    assert (await balance(payments_client, first))["available"] == 0
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_review_of_someone_elses_or_unfinished_assignment(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    other = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    live = await accepted(tasks_client, worker, project.id)
    resp = await approve(tasks_client, other.requester, work["id"])
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    resp = await reject(tasks_client, other.requester, work["id"])
    assert resp.status_code == 404
    resp = await approve(tasks_client, worker, work["id"])
    assert resp.status_code == 403
    resp = await approve(tasks_client, project.requester, live["assignment_id"])
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    assert (await approve(tasks_client, project.requester, work["id"])).status_code == 200
    resp = await reject(tasks_client, project.requester, work["id"])
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["id"]) == (
        "approved"
    )


async def test_override_pays_from_available_and_402_changes_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    assert (await reject(tasks_client, project.requester, work["id"])).status_code == 200
    assert (await balance(payments_client, project.requester))["available"] == 0

    short = await approve(tasks_client, project.requester, work["id"])
    assert short.status_code == 402 and short.json()["code"] == "insufficient_funds"
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["id"]) == (
        "rejected"
    )
    assert await payouts(db, work["id"]) == []

    await deposit(payments_client, project.requester, "0.12")
    resp = await approve(tasks_client, project.requester, work["id"], feedback="Second look: ok")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "approved" and resp.json()["feedback"] == "Second look: ok"
    paid = await payouts(db, work["id"])
    assert len(paid) == 1 and paid[0]["amount_cents"] == 10  # paid synchronously
    assert (await balance(payments_client, worker))["available"] == 10
    requester_money = await balance(payments_client, project.requester)
    assert requester_money["available"] == 0
    # the reopened slot keeps its reservation; nothing else moved in the task
    assert requester_money["reserved"] == project.slot_cents
    assert await open_slots(db, project.id) == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", f"pay:{work['id']}") == 0
    stats = await tasks_client.get(
        f"/v1/projects/{project.id}/workers", headers=project.requester.headers
    )
    row = stats.json()["items"][0]
    assert (row["approved"], row["rejected"]) == (1, 0)
    await assert_ledger_ok(payments_client)


async def test_override_window_is_30_days_from_submission(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=100
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    assert (await reject(tasks_client, project.requester, work["id"])).status_code == 200
    await db.execute(
        "UPDATE assignments SET submitted_at = now() - interval '31 days' WHERE id = $1",
        work["id"],
    )
    resp = await approve(tasks_client, project.requester, work["id"])
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    assert await payouts(db, work["id"]) == []


async def test_override_while_payments_is_down_is_503_and_changes_nothing(
    mesh, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=100
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    assert (await reject(tasks_client, project.requester, work["id"])).status_code == 200
    mesh.stop("payments")
    try:
        resp = await approve(tasks_client, project.requester, work["id"])
    finally:
        mesh.start("payments")
    assert resp.status_code == 503 and resp.headers.get("Retry-After")
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", work["id"]) == (
        "rejected"
    )
    assert (await approve(tasks_client, project.requester, work["id"])).status_code == 200
    assert len(await payouts(db, work["id"])) == 1


async def test_task_completes_when_all_its_slots_are_approved_concurrently(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=3
    )
    crowd = await workers(workers_client, 3)
    done = [await submitted(tasks_client, w, project.id) for w in crowd]
    responses = await asyncio.gather(
        *(approve(tasks_client, project.requester, d["id"]) for d in done)
    )
    assert [r.status_code for r in responses] == [200, 200, 200]
    task = await db.fetchrow(
        "SELECT status, open_slots, approved_slots FROM tasks WHERE id = $1", done[0]["task_id"]
    )
    assert dict(task) == {"status": "completed", "open_slots": 0, "approved_slots": 3}
    await wait_delivered(db, [f"pay:{d['id']}" for d in done], apps)
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_rejection_in_a_closed_project_releases_the_slot_money(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    worker, returner = await create_worker(workers_client), await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    live = await accepted(tasks_client, returner, project.id)
    closed = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert closed.status_code == 200, closed.text
    await wait_delivered(db, [f"release:close:{project.id}"], apps)
    assert await held(db, project.id) == 2 * project.slot_cents  # the two live assignments

    assert (await reject(tasks_client, project.requester, work["id"])).status_code == 200
    resp = await tasks_client.post(
        f"/v1/assignments/{live['assignment_id']}/return", headers=returner.headers
    )
    assert resp.status_code == 200
    assert await open_slots(db, project.id) == 0
    await wait_delivered(
        db, [f"release:slot:{work['id']}", f"release:slot:{live['assignment_id']}"], apps
    )
    assert await held(db, project.id) == 0
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0 and money["available"] == 3 * project.slot_cents
    await assert_ledger_ok(payments_client)


async def test_bulk_review_gives_per_item_results(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(6), assignments_per_task=2
    )
    other = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    crowd = await workers(workers_client, 2)
    done = [await submitted(tasks_client, crowd[i % 2], project.id) for i in range(8)]
    foreign = await submitted(tasks_client, crowd[0], other.id)
    live = await accepted(tasks_client, crowd[1], project.id)
    already = done[7]
    assert (await approve(tasks_client, project.requester, already["id"])).status_code == 200

    body = {
        "approve": [
            {"id": done[0]["id"], "feedback": "great"},
            {"id": done[1]["id"]},
            {"id": done[2]["id"]},
            {"id": foreign["id"]},
            {"id": "NOSUCHASSIGNMENT"},
            {"id": live["assignment_id"]},
            {"id": already["id"]},
        ],
        "reject": [
            {"id": done[3]["id"], "feedback": "Wrong animal, please look again."},
            {"id": done[4]["id"], "feedback": "Wrong animal, please look again."},
            {"id": done[0]["id"], "feedback": "Changed my mind about this."},
        ],
    }
    resp = await tasks_client.post(
        "/v1/assignments/review", json=body, headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    summary = [(r["id"], r["action"], r["status"], r.get("code")) for r in results]
    assert summary == [
        (done[0]["id"], "approve", "ok", None),
        (done[1]["id"], "approve", "ok", None),
        (done[2]["id"], "approve", "ok", None),
        (foreign["id"], "approve", "error", "not_found"),
        ("NOSUCHASSIGNMENT", "approve", "error", "not_found"),
        (live["assignment_id"], "approve", "error", "invalid_state"),
        (already["id"], "approve", "ok", None),
        (done[3]["id"], "reject", "ok", None),
        (done[4]["id"], "reject", "ok", None),
        (done[0]["id"], "reject", "error", "duplicate_item"),
    ]
    statuses = dict(
        await db.fetch(
            "SELECT id, status FROM assignments WHERE id = ANY($1)",
            [d["id"] for d in done] + [foreign["id"], live["assignment_id"]],
        )
    )
    assert [statuses[d["id"]] for d in done] == [
        "approved",
        "approved",
        "approved",
        "rejected",
        "rejected",
        "submitted",
        "submitted",
        "approved",
    ]
    assert statuses[foreign["id"]] == "submitted" and statuses[live["assignment_id"]] == "accepted"
    assert await db.fetchval("SELECT feedback FROM assignments WHERE id = $1", done[0]["id"]) == (
        "great"
    )
    # 12 slots: 4 approved, 2 still submitted, 1 accepted; the 2 rejected ones reopened
    assert await open_slots(db, project.id) == 12 - 4 - 2 - 1
    keys = [f"pay:{done[i]['id']}" for i in (0, 1, 2, 7)]
    await wait_delivered(db, keys, apps)
    total = await db.fetchval(
        "SELECT sum(amount_cents) FROM ledger_transactions WHERE kind = 'payout'"
        " AND project_id = $1",
        project.id,
    )
    assert total == 4 * 10
    await assert_ledger_ok(payments_client)


async def test_bulk_review_validation(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    headers = project.requester.headers
    for body in (
        {},
        {"approve": [], "reject": []},
        {"reject": [{"id": "X", "feedback": "short"}]},
        {"approve": [{"id": f"A{i}"} for i in range(1001)]},
        {
            "approve": [{"id": f"A{i}"} for i in range(600)],
            "reject": [{"id": f"R{i}", "feedback": "not good enough"} for i in range(401)],
        },
        {"approve": [{"id": "X", "bonus": "1.00"}]},
    ):
        resp = await tasks_client.post("/v1/assignments/review", json=body, headers=headers)
        assert resp.status_code == 422, (body, resp.text)
    many = {"approve": [{"id": f"MISSING{i}"} for i in range(1000)]}
    resp = await tasks_client.post("/v1/assignments/review", json=many, headers=headers)
    assert resp.status_code == 200
    assert {r["code"] for r in resp.json()["results"]} == {"not_found"}


async def test_single_approval_writes_what_the_set_based_path_writes(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """A single approve is one statement of its own; it must leave exactly what the bulk path
    (decide, consume the slot, tally, enqueue) leaves: the payout message as payout_message
    builds it, the slot consumed (the task completes with its last approval), the tally."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=2
    )
    crowd = [await create_worker(workers_client) for _ in range(2)]
    done = [await submitted(tasks_client, w, project.id, {"label": "cat"}) for w in crowd]
    task_id = project.task_ids[0]
    for n, (worker, work) in enumerate(zip(crowd, done, strict=True), start=1):
        tally = "SELECT approved FROM gold_stats WHERE project_id = $1 AND worker_id = $2"
        before = await db.fetchval(tally, project.id, worker.id)
        resp = await approve(tasks_client, project.requester, work["id"])
        assert resp.status_code == 200, resp.text
        row = await db.fetchrow(
            "SELECT *, false AS overridable FROM assignments WHERE id = $1", work["id"]
        )
        expected = payout_message(SimpleNamespace(**row), source="reserved")
        stored = await db.fetchrow("SELECT kind, payload FROM outbox WHERE key = $1", expected.key)
        assert stored["kind"] == expected.kind
        assert orjson.loads(stored["payload"]) == {**expected.payload, "key": expected.key}
        task = await db.fetchrow("SELECT status, approved_slots FROM tasks WHERE id = $1", task_id)
        assert (task["status"], task["approved_slots"]) == (("open", "completed")[n - 1], n)
        assert await db.fetchval(tally, project.id, worker.id) == before + 1
