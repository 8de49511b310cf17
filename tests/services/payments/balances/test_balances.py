"""`GET /v1/balance` (both shapes) and `GET /v1/transactions` (the caller's entries)."""

from __future__ import annotations

import asyncpg
import httpx

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    balance,
    cents,
    create_assignment,
    deposit,
    pay,
    payout_body,
    reserve,
)


async def test_fresh_accounts_have_zero_balances(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    assert await balance(payments_client, requester) == {
        "available": "0.00",
        "reserved": "0.00",
        "spent": "0.00",
    }
    assert await balance(payments_client, worker) == {
        "pending": "0.00",
        "available": "0.00",
        "withdrawn": "0.00",
        "withdrawing": "0.00",
    }
    assert (await payments_client.get("/v1/balance")).status_code == 401


async def test_worker_pending_is_the_reward_of_submitted_work(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    for status, reward in (
        ("submitted", 40),
        ("submitted", 35),
        ("accepted", 1_000),
        ("approved", 1_000),
        ("rejected", 1_000),
    ):
        await create_assignment(
            db, requester_id=requester.id, worker_id=worker.id, status=status, reward_cents=reward
        )
    other = await create_worker(workers_client)
    await create_assignment(db, requester_id=requester.id, worker_id=other.id, reward_cents=999)
    assert (await balance(payments_client, worker))["pending"] == "0.75"


async def test_transactions_are_the_callers_entries_newest_first(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    stranger = await create_requester(workers_client)
    await deposit(payments_client, stranger, "9.99")
    await deposit(payments_client, requester, "10.00")
    project_id = new_id()
    await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=360
    )
    body = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=project_id,
        reward_cents=300,
        fee_cents=60,
    )
    assert (await pay(payments_client, body)).status_code == 201

    resp = await payments_client.get("/v1/transactions", headers=requester.headers)
    assert resp.status_code == 200
    items = resp.json()["items"]
    got = [(i["kind"], i["account"], i["amount"], i["balance_after"]) for i in items]
    assert got == [
        ("payout", "reserved", "-3.60", "0.00"),
        ("reservation", "reserved", "3.60", "3.60"),
        ("reservation", "available", "-3.60", "6.40"),
        ("deposit", "available", "10.00", "10.00"),
    ] or got == [
        ("payout", "reserved", "-3.60", "0.00"),
        ("reservation", "available", "-3.60", "6.40"),
        ("reservation", "reserved", "3.60", "3.60"),
        ("deposit", "available", "10.00", "10.00"),
    ]
    assert items[0]["reference"] == f"assignment:{body['assignment_id']}"
    assert items[1]["reference"] == f"project:{project_id}"
    assert all(
        set(i) >= {"id", "kind", "amount", "balance_after", "reference", "created_at"}
        for i in items
    )

    worker_items = (await payments_client.get("/v1/transactions", headers=worker.headers)).json()
    assert [(i["kind"], i["amount"], i["balance_after"]) for i in worker_items["items"]] == [
        ("payout", "3.00", "3.00")
    ]


async def test_transactions_paginate_without_gaps_or_repeats(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    for i in range(1, 8):
        await deposit(payments_client, requester, f"{i}.00")
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await payments_client.get(
            "/v1/transactions", params=params, headers=requester.headers
        )
        assert page.status_code == 200
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [cents(i["amount"]) for i in seen] == [700, 600, 500, 400, 300, 200, 100]
    # balance_after reads like a bank statement
    assert [cents(i["balance_after"]) for i in seen] == [2800, 2100, 1500, 1000, 600, 300, 100]
    bad = await payments_client.get(
        "/v1/transactions", params={"cursor": "garbage!"}, headers=requester.headers
    )
    assert bad.status_code == 422
