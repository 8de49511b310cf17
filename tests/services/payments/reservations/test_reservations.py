"""Internal money calls of the tasks service: reserve, pay, release (docs/internal-api.md).

Each acts once per key: a replay answers the first result with 200, a different body 409, and
concurrent duplicates never both move money.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    INTERNAL,
    assert_ledger_ok,
    balance,
    deposit,
    pay,
    payout_body,
    reserve,
)


async def _holds(db: asyncpg.Pool, requester_id: str, project_id: str) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT * FROM project_holds WHERE requester_id = $1 AND project_id = $2",
        requester_id,
        project_id,
    )


async def test_internal_calls_need_the_token(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    body = {"key": "k", "requester_id": requester.id, "project_id": "P", "amount_cents": 1}
    for headers in ({}, {"X-Internal-Token": "nope-nope-nope-nope"}, requester.headers):
        resp = await payments_client.post("/internal/reservations", json=body, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["code"] == "internal_token_required"
    assert (await payments_client.get("/internal/ledger/check")).status_code == 401


async def test_reserve_pay_release_move_money_and_keep_the_hold(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "10.00")
    project_id = new_id()

    resp = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=600
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["kind"] == "reservation" and resp.json()["amount_cents"] == 600
    assert await balance(payments_client, requester) == {
        "available": "4.00",
        "reserved": "6.00",
        "spent": "0.00",
    }

    body = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=project_id,
        reward_cents=250,
        fee_cents=50,
    )
    paid = await pay(payments_client, body)
    assert paid.status_code == 201, paid.text
    assert paid.json()["source"] == "reserved" and paid.json()["fee_cents"] == 50
    assert await balance(payments_client, requester) == {
        "available": "4.00",
        "reserved": "3.00",
        "spent": "3.00",
    }
    assert (await balance(payments_client, worker))["available"] == "2.50"

    released = await payments_client.post(
        "/internal/releases",
        json={
            "key": f"release:close:{project_id}",
            "requester_id": requester.id,
            "project_id": project_id,
            "amount_cents": 300,
        },
        headers=INTERNAL,
    )
    assert released.status_code == 201, released.text
    assert await balance(payments_client, requester) == {
        "available": "7.00",
        "reserved": "0.00",
        "spent": "3.00",
    }
    hold = await _holds(db, requester.id, project_id)
    assert (hold["held_cents"], hold["reserved_total_cents"]) == (0, 600)
    assert (hold["released_total_cents"], hold["spent_cents"]) == (300, 300)
    # the fee went to the platform's revenue, nowhere else
    fee = await db.fetchval(
        """SELECT sum(e.amount_cents) FROM ledger_entries e
           JOIN ledger_accounts a ON a.id = e.account_id
           WHERE e.transaction_id = $1 AND a.kind = 'platform_revenue'""",
        paid.json()["transaction_id"],
    )
    assert fee == 50
    await assert_ledger_ok(payments_client)


async def test_reservation_short_of_funds_is_402_and_moves_nothing(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    await deposit(payments_client, requester, "1.00")
    project_id = new_id()
    key = f"publish:{project_id}"
    resp = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=101, key=key
    )
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    assert await _holds(db, requester.id, project_id) is None
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE key = $1", key) == 0
    assert (await balance(payments_client, requester))["available"] == "1.00"
    # after a deposit, the same key acts: an error is never stored as the key's result
    await deposit(payments_client, requester, "1.00")
    retry = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=101, key=key
    )
    assert retry.status_code == 201


async def test_replays_act_once_and_a_changed_body_is_409(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "5.00")
    project_id = new_id()
    key = f"publish:{project_id}"

    first = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=200, key=key
    )
    again = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=200, key=key
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=300, key=key
    )
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"

    body = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=project_id,
        reward_cents=100,
        fee_cents=20,
    )
    paid = [await pay(payments_client, body) for _ in range(3)]
    assert [r.status_code for r in paid] == [201, 200, 200]
    assert all(r.json() == paid[0].json() for r in paid)
    other_fee = await pay(payments_client, {**body, "fee_cents": 21})
    assert other_fee.status_code == 409 and other_fee.json()["code"] == "idempotency_key_reused"
    # the same assignment under a different key is still paid only once
    other_key = await pay(payments_client, {**body, "key": "pay-again:" + body["assignment_id"]})
    assert other_key.status_code == 409 and other_key.json()["code"] == "already_paid"

    release = {
        "key": f"release:close:{project_id}",
        "requester_id": requester.id,
        "project_id": project_id,
        "amount_cents": 80,
    }
    released = [
        await payments_client.post("/internal/releases", json=release, headers=INTERNAL)
        for _ in range(2)
    ]
    assert [r.status_code for r in released] == [201, 200]

    assert await balance(payments_client, requester) == {
        "available": "3.80",
        "reserved": "0.00",
        "spent": "1.20",
    }
    assert (await balance(payments_client, worker))["available"] == "1.00"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE assignment_id = $1",
            body["assignment_id"],
        )
        == 1
    )
    await assert_ledger_ok(payments_client)


async def test_concurrent_duplicates_of_one_key_pay_once(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """20 copies of one payout at once, 10 times over: one acts (201), the others replay (200).
    A copy that met the assignment's unique index before the key's used to answer 409
    already_paid, in about 1 round in 10."""
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    rounds = 10
    await deposit(payments_client, requester, f"{10 * rounds}.00")
    for _ in range(rounds):
        project_id = new_id()
        assert (
            await reserve(
                payments_client,
                requester_id=requester.id,
                project_id=project_id,
                amount_cents=1000,
            )
        ).status_code == 201
        body = payout_body(
            requester_id=requester.id,
            worker_id=worker.id,
            project_id=project_id,
            reward_cents=100,
            fee_cents=20,
        )
        results = await asyncio.gather(*(pay(payments_client, body) for _ in range(20)))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200] * 19 + [201], [r.text for r in results if r.status_code >= 300]
        assert len({r.json()["transaction_id"] for r in results}) == 1
    assert (await balance(payments_client, worker))["available"] == f"{rounds}.00"
    assert (await balance(payments_client, requester))["reserved"] == f"{8.80 * rounds:.2f}"
    await assert_ledger_ok(payments_client)


async def test_payout_beyond_the_hold_is_409_and_override_pays_from_available(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "2.00")
    project_id = new_id()
    await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=100
    )
    too_big = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=project_id,
        reward_cents=90,
        fee_cents=18,
    )
    resp = await pay(payments_client, too_big)
    assert resp.status_code == 409 and resp.json()["code"] == "reservation_exhausted"
    assert resp.json()["held_cents"] == 100
    no_hold = await pay(payments_client, {**too_big, "project_id": new_id(), "key": "x" + new_id()})
    assert no_hold.status_code == 409 and no_hold.json()["code"] == "reservation_exhausted"

    # an override of a rejected assignment pays from available: 1.08 of the 1.00 left
    override = {**too_big, "source": "available"}
    resp = await pay(payments_client, override)
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    assert (await balance(payments_client, worker))["available"] == "0.00"
    await deposit(payments_client, requester, "0.08")
    resp = await pay(payments_client, override)
    assert resp.status_code == 201, resp.text
    assert await balance(payments_client, requester) == {
        "available": "0.00",
        "reserved": "1.00",
        "spent": "1.08",
    }
    assert (await balance(payments_client, worker))["available"] == "0.90"
    await assert_ledger_ok(payments_client)


async def test_release_beyond_the_hold_is_409(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    await deposit(payments_client, requester, "1.00")
    project_id = new_id()
    await reserve(
        payments_client, requester_id=requester.id, project_id=project_id, amount_cents=50
    )
    resp = await payments_client.post(
        "/internal/releases",
        json={
            "key": f"release:close:{project_id}",
            "requester_id": requester.id,
            "project_id": project_id,
            "amount_cents": 51,
        },
        headers=INTERNAL,
    )
    assert resp.status_code == 409 and resp.json()["code"] == "reservation_exhausted"
    assert (await balance(payments_client, requester))["reserved"] == "0.50"


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": 1.5},
        {"amount_cents": "100"},
        {"key": ""},
        {"project_id": "not an id!"},
        {"surprise": True},
    ],
)
async def test_invalid_internal_bodies_are_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, change: dict
) -> None:
    requester = await create_requester(workers_client)
    body = {"key": new_id(), "requester_id": requester.id, "project_id": "P1", "amount_cents": 5}
    resp = await payments_client.post(
        "/internal/reservations", json={**body, **change}, headers=INTERNAL
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "validation_error"


async def test_unknown_accounts_are_404(payments_client: httpx.AsyncClient) -> None:
    resp = await reserve(payments_client, requester_id="NOSUCH", project_id="P", amount_cents=1)
    assert resp.status_code == 404 and resp.json()["code"] == "account_not_found"
