"""`POST /internal/top-ups`: a pay floor top-up is a bonus from the project's hold (or the
requester's available balance), once per key; a refusal moves nothing."""

from __future__ import annotations

import httpx

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import INTERNAL, assert_ledger_ok, deposit, reserve


def _body(requester_id: str, worker_id: str, project_id: str, **over: object) -> dict:
    assignment_id = new_id()
    return {
        "key": f"topup:{assignment_id}",
        "requester_id": requester_id,
        "project_id": project_id,
        "task_id": new_id(),
        "assignment_id": assignment_id,
        "worker_id": worker_id,
        "amount_cents": 50,
        "fee_cents": 10,
        "source": "reserved",
        **over,
    }


async def _money(payments_client: httpx.AsyncClient, actor) -> dict:
    return (await payments_client.get("/v1/balance", headers=actor.headers)).json()


async def test_top_ups_draw_the_hold_once_and_refusals_move_nothing(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    project_id = new_id()
    await deposit(payments_client, requester, "1.00")
    assert (
        await reserve(payments_client, requester_id=requester.id, project_id=project_id,
                      amount_cents=100)
    ).status_code == 201  # fmt: skip

    body = _body(requester.id, worker.id, project_id)
    first = await payments_client.post("/internal/top-ups", json=body, headers=INTERNAL)
    assert first.status_code == 201, first.text
    assert first.json()["kind"] == "bonus" and first.json()["source"] == "reserved"
    again = await payments_client.post("/internal/top-ups", json=body, headers=INTERNAL)
    assert again.status_code == 200 and again.json() == first.json()
    assert (await _money(payments_client, worker))["available"] == "0.50"
    held = await db.fetchval(
        "SELECT held_cents FROM project_holds WHERE project_id = $1", project_id
    )
    assert held == 40

    # More than the hold holds: 409, nothing moves (the key is free again).
    short = _body(requester.id, worker.id, project_id, amount_cents=40, fee_cents=8)
    resp = await payments_client.post("/internal/top-ups", json=short, headers=INTERNAL)
    assert resp.status_code == 409 and resp.json()["code"] == "reservation_exhausted"
    assert resp.json()["held_cents"] == 40 and resp.json()["needed_cents"] == 48
    # From `available` beyond the balance (0.00 left): 402.
    resp = await payments_client.post(
        "/internal/top-ups", json={**short, "source": "available"}, headers=INTERNAL
    )
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    # Bad bodies: 422.
    for bad in ({"amount_cents": 0}, {"amount_cents": 1.5}, {"fee_cents": -1}, {"source": "x"}):
        resp = await payments_client.post(
            "/internal/top-ups", json={**short, **bad}, headers=INTERNAL
        )
        assert resp.status_code == 422, (bad, resp.text)
    assert (await _money(payments_client, worker))["available"] == "0.50"
    assert (
        await db.fetchval("SELECT held_cents FROM project_holds WHERE project_id = $1", project_id)
        == 40
    )
    resp = await payments_client.post("/internal/top-ups", json=body)  # no internal token
    assert resp.status_code == 401
    await assert_ledger_ok(payments_client)
