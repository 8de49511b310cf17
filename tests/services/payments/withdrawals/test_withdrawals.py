"""`POST/GET /v1/withdrawals`: limits, 402, no overdraft under 100 concurrent withdrawals,
pending -> paid by the asynchronous test payout provider, each withdrawal paid exactly once."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from services.payments.providers import TestPayoutProvider
from services.payments.withdrawals.runner import pay_due_withdrawals
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import assert_ledger_ok, balance, cents, fund_worker

PAYOUT_WAIT_SECONDS = 15.0


async def _wait_paid(client: httpx.AsyncClient, worker: Actor, withdrawal_id: str) -> dict:
    """Poll the listing until the background payout runner has paid the withdrawal."""
    deadline = time.monotonic() + PAYOUT_WAIT_SECONDS
    while time.monotonic() < deadline:
        listing = await client.get("/v1/withdrawals", headers=worker.headers)
        item = next(i for i in listing.json()["items"] if i["id"] == withdrawal_id)
        if item["status"] == "paid":
            return item
        await asyncio.sleep(0.1)
    raise AssertionError(f"withdrawal {withdrawal_id} was not paid in {PAYOUT_WAIT_SECONDS}s")


async def test_withdrawal_leaves_available_at_once_and_is_paid_later(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=500)
    resp = await payments_client.post(
        "/v1/withdrawals", json={"amount": "3.00"}, headers=worker.headers
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["status"] == "pending" and created["amount"] == "3.00"
    assert created["paid_at"] is None
    right_after = await balance(payments_client, worker)
    assert (right_after["pending"], right_after["available"]) == ("0.00", "2.00")
    assert right_after["withdrawn"] == "3.00"
    # "3.00" until the provider pays (a second after asking, by default)
    assert right_after["withdrawing"] in {"3.00", "0.00"}
    await assert_ledger_ok(payments_client)  # the in-flight account matches pending withdrawals

    paid = await _wait_paid(payments_client, worker, created["id"])
    assert paid["provider_reference"].startswith("testpayout_") and paid["paid_at"]
    after = await balance(payments_client, worker)
    assert (after["available"], after["withdrawn"], after["withdrawing"]) == (
        "2.00",
        "3.00",
        "0.00",
    )
    kinds = await db.fetch(
        """SELECT t.kind, count(*) AS n FROM ledger_transactions t
           WHERE t.reference = $1 GROUP BY t.kind ORDER BY t.kind""",
        f"withdrawal:{created['id']}",
    )
    assert [(r["kind"], r["n"]) for r in kinds] == [("withdrawal", 1), ("withdrawal_paid", 1)]
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize("amount", ["0.99", "0", "abc", 5])
async def test_below_the_minimum_is_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, amount
) -> None:
    worker = await create_worker(workers_client)
    resp = await payments_client.post(
        "/v1/withdrawals", json={"amount": amount}, headers=worker.headers
    )
    assert resp.status_code == 422 and resp.json()["code"] == "validation_error"


async def test_more_than_available_is_402(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    never_earned = await payments_client.post(
        "/v1/withdrawals", json={"amount": "1.00"}, headers=worker.headers
    )
    assert never_earned.status_code == 402
    await fund_worker(payments_client, requester, worker, reward_cents=150)
    resp = await payments_client.post(
        "/v1/withdrawals", json={"amount": "1.51"}, headers=worker.headers
    )
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    listing = await payments_client.get("/v1/withdrawals", headers=worker.headers)
    assert listing.json() == {"items": [], "next_cursor": None}
    assert (await balance(payments_client, worker))["available"] == "1.50"


async def test_requesters_cannot_withdraw(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    post = await payments_client.post(
        "/v1/withdrawals", json={"amount": "1.00"}, headers=requester.headers
    )
    get = await payments_client.get("/v1/withdrawals", headers=requester.headers)
    assert post.status_code == get.status_code == 403


async def test_100_concurrent_withdrawals_never_overdraw(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=3_750)
    results = await asyncio.gather(
        *(
            payments_client.post("/v1/withdrawals", json={"amount": "1.00"}, headers=worker.headers)
            for _ in range(100)
        )
    )
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {201, 402}, {r.text for r in results if r.status_code >= 500}
    assert statuses.count(201) == 37
    after = await balance(payments_client, worker)
    assert after["available"] == "0.50"
    assert cents(after["withdrawn"]) == 3_700
    await assert_ledger_ok(payments_client)


async def test_idempotency_key_withdraws_once(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=1_000)
    headers = {**worker.headers, "Idempotency-Key": "payday"}
    results = await asyncio.gather(
        *(
            payments_client.post("/v1/withdrawals", json={"amount": "4.00"}, headers=headers)
            for _ in range(6)
        )
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert (await balance(payments_client, worker))["available"] == "6.00"
    listing = await payments_client.get("/v1/withdrawals", headers=worker.headers)
    assert len(listing.json()["items"]) == 1


async def test_listing_is_own_newest_first_and_paginated(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    other = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=1_000)
    await fund_worker(payments_client, requester, other, reward_cents=1_000)
    await payments_client.post("/v1/withdrawals", json={"amount": "5.00"}, headers=other.headers)
    ids = []
    for amount in ("1.00", "2.00", "3.00"):
        resp = await payments_client.post(
            "/v1/withdrawals", json={"amount": amount}, headers=worker.headers
        )
        ids.append(resp.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await payments_client.get("/v1/withdrawals", params=params, headers=worker.headers)
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_concurrent_runners_pay_each_withdrawal_exactly_once(
    apps: dict, payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    """Several replicas' runners (and the live service's) race over the same due withdrawals."""
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=2_000)
    ids = []
    for _ in range(10):
        resp = await payments_client.post(
            "/v1/withdrawals", json={"amount": "1.00"}, headers=worker.headers
        )
        ids.append(resp.json()["id"])
    app = apps["payments"]
    settings = app.state.settings.model_copy(update={"payout_delay_seconds": 0.0})
    await asyncio.gather(
        *(
            pay_due_withdrawals(
                app.state.database, settings=settings, provider=TestPayoutProvider()
            )
            for _ in range(5)
        )
    )
    rows = await db.fetch(
        """SELECT w.id, w.status, w.paid_transaction_id,
                  (SELECT count(*) FROM ledger_transactions t
                   WHERE t.kind = 'withdrawal_paid' AND t.reference = 'withdrawal:' || w.id) AS paid
           FROM withdrawals w WHERE w.id = ANY($1::text[])""",
        ids,
    )
    assert len(rows) == 10
    assert all(r["status"] == "paid" and r["paid"] == 1 for r in rows)
    await assert_ledger_ok(payments_client)
