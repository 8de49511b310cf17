"""`POST /v1/bonuses`: own assignments only, submitted work only, fee on top, 402, idempotent,
and no overdraft under 100 concurrent bonuses."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    assert_ledger_ok,
    balance,
    cents,
    create_assignment,
    deposit,
)


async def test_bonus_pays_the_worker_and_the_fee_from_available(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(
        db, requester_id=requester.id, worker_id=worker.id, status="approved"
    )
    await deposit(payments_client, requester, "5.00")
    resp = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "1.13", "reason": "  great work "},
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["amount"] == "1.13" and body["fee"] == "0.23"  # 22.6 cents rounds half up
    assert body["worker_id"] == worker.id and body["reason"] == "great work"
    assert body["project_id"] == work.project_id
    assert await balance(payments_client, requester) == {
        "available": "3.64",
        "reserved": "0.00",
        "spent": "1.36",
    }
    assert (await balance(payments_client, worker))["available"] == "1.13"
    held = await db.fetchrow(
        "SELECT held_cents, spent_cents FROM project_holds WHERE project_id = $1", work.project_id
    )
    assert (held["held_cents"], held["spent_cents"]) == (0, 136)
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize("status", ["submitted", "rejected"])
async def test_bonus_for_any_submitted_work(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, status
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(
        db, requester_id=requester.id, worker_id=worker.id, status=status
    )
    await deposit(payments_client, requester, "1.00")
    resp = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "0.01", "reason": "thanks"},
        headers=requester.headers,
    )
    assert resp.status_code == 201 and resp.json()["fee"] == "0.01"  # the minimum fee


@pytest.mark.parametrize("status", ["accepted", "returned", "expired"])
async def test_no_bonus_for_work_never_submitted(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, status
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(
        db, requester_id=requester.id, worker_id=worker.id, status=status
    )
    await deposit(payments_client, requester, "1.00")
    resp = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "0.50", "reason": "thanks"},
        headers=requester.headers,
    )
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    assert (await balance(payments_client, requester))["available"] == "1.00"


async def test_someone_elses_assignment_is_404_like_a_missing_one(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(db, requester_id=owner.id, worker_id=worker.id)
    await deposit(payments_client, other, "5.00")
    theirs = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "1.00", "reason": "x"},
        headers=other.headers,
    )
    missing = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": "NOSUCHASSIGNMENT", "amount": "1.00", "reason": "x"},
        headers=other.headers,
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert (await balance(payments_client, other))["available"] == "5.00"
    assert (await balance(payments_client, worker))["available"] == "0.00"


async def test_short_balance_is_402_and_moves_nothing(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(db, requester_id=requester.id, worker_id=worker.id)
    await deposit(payments_client, requester, "1.20")
    # 1.00 + 0.20 fits exactly; 1.01 + 0.20 does not
    short = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "1.01", "reason": "x"},
        headers=requester.headers,
    )
    assert short.status_code == 402 and short.json()["code"] == "insufficient_funds"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE assignment_id = $1", work.assignment_id
        )
        == 0
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM project_holds WHERE project_id = $1", work.project_id
        )
        == 0
    )
    exact = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": "1.00", "reason": "x"},
        headers=requester.headers,
    )
    assert exact.status_code == 201
    assert (await balance(payments_client, requester))["available"] == "0.00"


@pytest.mark.parametrize(
    "change",
    [
        {"reason": ""},
        {"reason": "   "},
        {"amount": "0"},
        {"amount": 1},
        {"assignment_id": ""},
        {"tip": "yes"},
    ],
)
async def test_invalid_bonus_bodies_are_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, change: dict
) -> None:
    requester = await create_requester(workers_client)
    body = {"assignment_id": "A1", "amount": "1.00", "reason": "good"}
    body.update(change)
    resp = await payments_client.post("/v1/bonuses", json=body, headers=requester.headers)
    assert resp.status_code == 422, resp.text
    missing_reason = {"assignment_id": "A1", "amount": "1.00"}
    resp = await payments_client.post("/v1/bonuses", json=missing_reason, headers=requester.headers)
    assert resp.status_code == 422


async def test_workers_cannot_pay_bonuses(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    resp = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": "A1", "amount": "1.00", "reason": "x"},
        headers=worker.headers,
    )
    assert resp.status_code == 403


async def test_idempotency_key_pays_a_bonus_once(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(db, requester_id=requester.id, worker_id=worker.id)
    await deposit(payments_client, requester, "10.00")
    headers = {**requester.headers, "Idempotency-Key": f"bonus-{work.assignment_id}"}
    body = {"assignment_id": work.assignment_id, "amount": "2.00", "reason": "extra effort"}
    results = await asyncio.gather(
        *(payments_client.post("/v1/bonuses", json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.text for r in results}) == 1
    again = await payments_client.post("/v1/bonuses", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == results[0].json()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = await payments_client.post(
        "/v1/bonuses", json={**body, "amount": "3.00"}, headers=headers
    )
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"
    assert (await balance(payments_client, worker))["available"] == "2.00"
    assert (await balance(payments_client, requester))["available"] == "7.60"


async def test_100_concurrent_bonuses_never_overdraw(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(db, requester_id=requester.id, worker_id=worker.id)
    await deposit(payments_client, requester, "30.00")  # room for 25 bonuses of 1.00 + 0.20
    body = {"assignment_id": work.assignment_id, "amount": "1.00", "reason": "race"}
    results = await asyncio.gather(
        *(
            payments_client.post("/v1/bonuses", json=body, headers=requester.headers)
            for _ in range(100)
        )
    )
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {201, 402}, {r.text for r in results if r.status_code not in (201, 402)}
    paid = statuses.count(201)
    assert paid == 25
    after = await balance(payments_client, requester)
    assert cents(after["available"]) == 3000 - paid * 120 == 0
    assert cents(after["spent"]) == paid * 120
    assert cents((await balance(payments_client, worker))["available"]) == paid * 100
    await assert_ledger_ok(payments_client)
