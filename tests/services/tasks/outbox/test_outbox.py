"""The payments outbox: delivered after commit, retried with backoff while payments is down,
parked when payments refuses for good, safe with several deliverers."""

from __future__ import annotations

import asyncio

import httpx

from services.tasks.lifecycle.messages import enqueue
from services.tasks.outbox.service import OutboxDeliverer
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    INTERNAL,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    published_project,
    submitted,
    wait_delivered,
)


async def test_payout_lands_right_after_the_approval_commits(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    assert (await approve(tasks_client, project.requester, work["id"])).status_code == 200
    # No explicit delivery pass: the request's wake-up (or the live process's poll) delivers.
    for _ in range(100):
        if await db.fetchval(
            "SELECT delivered_at IS NOT NULL FROM outbox WHERE key = $1", f"pay:{work['id']}"
        ):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("payout not delivered within 2 s")
    assert (await balance(payments_client, worker))["available"] == 10


async def test_outbox_retries_while_payments_is_down_then_delivers(
    apps: dict, mesh, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await submitted(tasks_client, worker, project.id)
    key = f"pay:{work['id']}"
    mesh.stop("payments")
    try:
        resp = await approve(tasks_client, project.requester, work["id"])
        assert resp.status_code == 200  # approval does not depend on payments being up
        # The request's wake-up tries at once and fails; the failure is recorded.
        for _ in range(200):
            await apps["tasks"].state.outbox_deliverer.deliver_due()
            row = await db.fetchrow(
                "SELECT attempts, last_error, delivered_at, parked_at,"
                " next_attempt_at > now() AS backing_off FROM outbox WHERE key = $1",
                key,
            )
            if row["last_error"] is not None:
                break
            await asyncio.sleep(0.02)
        assert row["attempts"] >= 1 and row["delivered_at"] is None and row["parked_at"] is None
        assert "unavailable" in row["last_error"] and row["backing_off"]
        stats = (await tasks_client.get("/internal/outbox/stats", headers=INTERNAL)).json()
        assert stats["pending"] >= 1 and stats["retrying"] >= 1
    finally:
        mesh.start("payments")
    # Skip the rest of the backoff instead of waiting for it.
    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE key = $1", key)
    rows = await wait_delivered(db, [key], apps)
    assert rows[0]["last_error"] is None
    assert (await balance(payments_client, worker))["available"] == 10
    await assert_ledger_ok(payments_client)


async def test_backoff_grows_and_is_capped(apps: dict) -> None:
    deliverer = OutboxDeliverer(
        database=apps["tasks"].state.database,
        payments=apps["tasks"].state.peers["payments"],
        batch_size=10,
        concurrency=2,
        poll_interval_seconds=1,
        backoff_base_seconds=2,
        backoff_cap_seconds=60,
        lease_seconds=30,
    )
    delays = [deliverer.backoff_seconds(n) for n in range(1, 10)]
    assert 1 <= delays[0] <= 2 and 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[6:])


async def test_a_refused_message_is_parked_and_others_still_flow(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    requester_project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    good_key = f"release:test-good:{requester_project.id}"
    bad_key = f"release:test-bad:{requester_project.id}"
    async with apps["tasks"].state.database.transaction() as conn:
        # More than the project holds: payments answers 409, which asking again cannot fix.
        await enqueue(
            conn,
            kind="release",
            key=bad_key,
            payload={
                "requester_id": requester_project.requester.id,
                "project_id": requester_project.id,
                "amount_cents": 10**9,
            },
        )
        await enqueue(
            conn,
            kind="release",
            key=good_key,
            payload={
                "requester_id": requester_project.requester.id,
                "project_id": requester_project.id,
                "amount_cents": 1,
            },
        )
    await wait_delivered(db, [good_key], apps)
    for _ in range(100):
        bad = await db.fetchrow(
            "SELECT parked_at, last_error, delivered_at FROM outbox WHERE key = $1", bad_key
        )
        if bad["parked_at"] is not None:
            break
        await apps["tasks"].state.outbox_deliverer.deliver_due()
        await asyncio.sleep(0.02)
    assert bad["parked_at"] is not None and bad["delivered_at"] is None
    assert bad["last_error"].startswith("409")
    stats = (await tasks_client.get("/internal/outbox/stats", headers=INTERNAL)).json()
    assert stats["parked"] >= 1
    await assert_ledger_ok(payments_client)


async def test_concurrent_deliverers_send_each_message_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(20)
    )
    crowd = [await create_worker(workers_client) for _ in range(20)]
    done = [await submitted(tasks_client, w, project.id) for w in crowd]
    body = {"approve": [{"id": d["id"]} for d in done]}
    resp = await tasks_client.post(
        "/v1/assignments/review", json=body, headers=project.requester.headers
    )
    assert resp.status_code == 200
    deliverer = apps["tasks"].state.outbox_deliverer
    await asyncio.gather(*(deliverer.deliver_due() for _ in range(5)))
    keys = [f"pay:{d['id']}" for d in done]
    await wait_delivered(db, keys, apps)
    attempts = await db.fetchval("SELECT max(attempts) FROM outbox WHERE key = ANY($1)", keys)
    assert attempts == 1  # leased by exactly one pass each
    paid = await db.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'payout' AND project_id = $1",
        project.id,
    )
    assert paid == 20


async def test_stats_need_the_internal_token(tasks_client: httpx.AsyncClient) -> None:
    assert (await tasks_client.get("/internal/outbox/stats")).status_code == 401
    resp = await tasks_client.get(
        "/internal/outbox/stats", headers={"X-Internal-Token": INTERNAL_TOKEN}
    )
    assert resp.status_code == 200
    assert set(resp.json()) >= {"pending", "due", "retrying", "parked", "delivered"}
