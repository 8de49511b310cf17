"""Money strings with a trailing line break are refused everywhere money comes in.

`"1.5\\n"` used to be read as 1.05 (`re.match` lets `$` match before a final newline, then the
fraction was sliced): deposits, bonuses, withdrawals and project rewards (create and edit) now
answer 422 problem+json and leave the caller's money and objects exactly as they were.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import (
    assert_ledger_ok,
    create_assignment,
    deposit,
    fund_worker,
)
from tests.fixtures.tasks import PROJECT_DEFAULTS

NEWLINE_AMOUNTS = ["1.5\n", "1.50\n", "2\n"]


def assert_422_on(resp: httpx.Response, field: str) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["code"] == "validation_error", problem
    assert problem["errors"][0]["loc"][:2] == ["body", field], problem


async def money_state(
    payments_client: httpx.AsyncClient, db: asyncpg.Pool, *actors: Actor
) -> dict[str, Any]:
    """What a money call may change for these actors: balances, ledger, withdrawals, bonuses."""
    state: dict[str, Any] = {}
    for actor in actors:
        state[actor.id] = {
            "balance": (await payments_client.get("/v1/balance", headers=actor.headers)).json(),
            "transactions": (
                await payments_client.get("/v1/transactions", headers=actor.headers)
            ).json(),
            "ledger": await db.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE requester_id = $1 "
                "OR worker_id = $1",
                actor.id,
            ),
        }
        if actor.kind == "worker":
            state[actor.id]["withdrawals"] = (
                await payments_client.get("/v1/withdrawals", headers=actor.headers)
            ).json()
    return state


@pytest.mark.parametrize("amount", NEWLINE_AMOUNTS, ids=repr)
async def test_deposit_with_a_trailing_newline_is_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, amount
) -> None:
    requester = await create_requester(workers_client)
    await deposit(payments_client, requester, "10.00")
    before = await money_state(payments_client, db, requester)
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": amount}, headers=requester.headers
    )
    assert_422_on(resp, "amount")
    assert await money_state(payments_client, db, requester) == before
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize("amount", NEWLINE_AMOUNTS, ids=repr)
async def test_bonus_with_a_trailing_newline_is_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, amount
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    work = await create_assignment(
        db, requester_id=requester.id, worker_id=worker.id, status="approved"
    )
    await deposit(payments_client, requester, "10.00")
    before = await money_state(payments_client, db, requester, worker)
    resp = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": work.assignment_id, "amount": amount, "reason": "good work"},
        headers=requester.headers,
    )
    assert_422_on(resp, "amount")
    assert await money_state(payments_client, db, requester, worker) == before
    assert before[worker.id]["transactions"]["items"] == []  # no bonus reached the worker


@pytest.mark.parametrize("amount", NEWLINE_AMOUNTS, ids=repr)
async def test_withdrawal_with_a_trailing_newline_is_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool, amount
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await fund_worker(payments_client, requester, worker, reward_cents=500)
    before = await money_state(payments_client, db, worker)
    resp = await payments_client.post(
        "/v1/withdrawals", json={"amount": amount}, headers=worker.headers
    )
    assert_422_on(resp, "amount")
    assert await money_state(payments_client, db, worker) == before
    assert before[worker.id]["withdrawals"]["items"] == []


async def _projects(tasks_client: httpx.AsyncClient, requester: Actor) -> list[dict]:
    resp = await tasks_client.get("/v1/projects", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


@pytest.mark.parametrize("amount", NEWLINE_AMOUNTS, ids=repr)
async def test_project_reward_with_a_trailing_newline_is_422(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, amount
) -> None:
    requester = await create_requester(workers_client)
    resp = await tasks_client.post(
        "/v1/projects", json={**PROJECT_DEFAULTS, "reward": amount}, headers=requester.headers
    )
    assert_422_on(resp, "reward")
    assert await _projects(tasks_client, requester) == []

    draft = await tasks_client.post(
        "/v1/projects", json={**PROJECT_DEFAULTS, "reward": "0.10"}, headers=requester.headers
    )
    assert draft.status_code == 201, draft.text
    before = await _projects(tasks_client, requester)
    resp = await tasks_client.patch(
        f"/v1/projects/{draft.json()['id']}", json={"reward": amount}, headers=requester.headers
    )
    assert_422_on(resp, "reward")
    after = await _projects(tasks_client, requester)
    assert after == before and after[0]["reward"] == "0.10"
