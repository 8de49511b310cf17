"""`POST /internal/bonuses` and `GET /internal/requesters/{id}/balance`: a requester's bonus and
balance asked for by another service on its behalf (the MTurk door's SendBonus and
GetAccountBalance). A bonus is paid at most once per key, concurrent duplicates included."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    INTERNAL,
    assert_ledger_ok,
    balance,
    create_assignment,
    deposit,
)


async def test_keyed_bonus_pays_once_per_key(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(
        db, requester_id=requester.id, worker_id=worker.id, status="submitted"
    )
    await deposit(payments_client, requester, "10.00")
    body = {
        "key": "mturk:bonus:token-1",
        "requester_id": requester.id,
        "assignment_id": work.assignment_id,
        "amount_cents": 100,
        "reason": "Great work",
    }
    answers = await asyncio.gather(
        *(payments_client.post("/internal/bonuses", json=body, headers=INTERNAL) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1  # one bonus, four replays of it
    assert answers[0].json()["amount"] == "1.00" and answers[0].json()["fee"] == "0.20"
    assert (await balance(payments_client, worker))["available"] == "1.00"

    reused = await payments_client.post(
        "/internal/bonuses", json={**body, "amount_cents": 200}, headers=INTERNAL
    )
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    other = await payments_client.post(
        "/internal/bonuses", json={**body, "key": "mturk:bonus:token-2"}, headers=INTERNAL
    )
    assert other.status_code == 201 and other.json()["id"] != answers[0].json()["id"]
    assert (await balance(payments_client, worker))["available"] == "2.00"

    internal_balance = await payments_client.get(
        f"/internal/requesters/{requester.id}/balance", headers=INTERNAL
    )
    assert internal_balance.status_code == 200
    assert internal_balance.json() == {
        **await balance(payments_client, requester),
        "kind": "requester",
    }
    assert internal_balance.json()["available"] == "7.60"

    # Someone else's assignment is a 404 and a refusal moves nothing; no token: 401.
    stranger = await create_requester(workers_client)
    await deposit(payments_client, stranger, "5.00")
    resp = await payments_client.post(
        "/internal/bonuses",
        json={**body, "key": "k3", "requester_id": stranger.id},
        headers=INTERNAL,
    )
    assert resp.status_code == 404
    short = await payments_client.post(
        "/internal/bonuses", json={**body, "key": "k4", "amount_cents": 10_000}, headers=INTERNAL
    )
    assert short.status_code == 402
    assert (await payments_client.post("/internal/bonuses", json=body)).status_code == 401
    assert (await balance(payments_client, worker))["available"] == "2.00"
    await assert_ledger_ok(payments_client)
