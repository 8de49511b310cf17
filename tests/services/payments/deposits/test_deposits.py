"""`POST /v1/deposits`: the test payment provider, limits, roles, Idempotency-Key."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import assert_ledger_ok, balance


async def test_deposit_adds_to_available_through_the_test_provider(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": "12.5"}, headers=requester.headers
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["amount"] == "12.50" and body["status"] == "succeeded"
    assert body["provider"] == "test" and body["provider_reference"].startswith("testpay_")
    assert body["available"] == "12.50"
    assert await balance(payments_client, requester) == {
        "available": "12.50",
        "reserved": "0.00",
        "spent": "0.00",
    }
    legs = await db.fetch(
        """SELECT a.kind, e.amount_cents FROM ledger_entries e
           JOIN ledger_accounts a ON a.id = e.account_id WHERE e.transaction_id = $1
           ORDER BY e.amount_cents""",
        body["id"],
    )
    assert [(r["kind"], r["amount_cents"]) for r in legs] == [
        ("external", -1250),
        ("requester_available", 1250),
    ]
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize(
    "amount", ["0", "0.00", "100000.01", "250000", "-1", "1.234", 5, 5.5, "", "abc"]
)
async def test_invalid_amounts_are_422_and_change_nothing(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, amount
) -> None:
    requester = await create_requester(workers_client)
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": amount}, headers=requester.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "validation_error"
    assert resp.json()["errors"][0]["loc"][-1] == "amount"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE requester_id = $1", requester.id
        )
        == 0
    )


async def test_the_largest_deposit_is_accepted(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": "100000.00"}, headers=requester.headers
    )
    assert resp.status_code == 201
    assert (await balance(payments_client, requester))["available"] == "100000.00"


async def test_workers_cannot_deposit_and_strangers_are_401(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    resp = await payments_client.post("/v1/deposits", json={"amount": "1"}, headers=worker.headers)
    assert resp.status_code == 403 and resp.json()["code"] == "wrong_role"
    assert (await payments_client.post("/v1/deposits", json={"amount": "1"})).status_code == 401


async def test_unknown_fields_are_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": "1", "currency": "EUR"}, headers=requester.headers
    )
    assert resp.status_code == 422


async def test_idempotency_key_replays_and_concurrent_replays_act_once(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    headers = {**requester.headers, "Idempotency-Key": "dep-1"}
    results = await asyncio.gather(
        *(
            payments_client.post("/v1/deposits", json={"amount": "7.00"}, headers=headers)
            for _ in range(10)
        )
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert sum(r.headers["Idempotent-Replayed"] == "false" for r in results) == 1
    assert (await balance(payments_client, requester))["available"] == "7.00"

    reused = await payments_client.post("/v1/deposits", json={"amount": "8.00"}, headers=headers)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    # without a key, each call is a new deposit
    for _ in range(2):
        plain = await payments_client.post(
            "/v1/deposits", json={"amount": "1.00"}, headers=requester.headers
        )
        assert plain.status_code == 201
    assert (await balance(payments_client, requester))["available"] == "9.00"
    await assert_ledger_ok(payments_client)
