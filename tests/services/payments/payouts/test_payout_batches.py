"""Batched payouts (`POST /internal/payouts/batch`): every item keeps the single call's
exactly-once rules, a bad item fails alone, and a batch is one database transaction."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import asyncpg
import httpx
import pytest

from shared.ids import new_id
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import (
    INTERNAL,
    assert_ledger_ok,
    balance,
    cents,
    deposit,
    pay,
    payout_body,
    reserve,
)

BATCH = "/internal/payouts/batch"


async def pay_batch(client: httpx.AsyncClient, payouts: list[dict[str, Any]]) -> httpx.Response:
    return await client.post(BATCH, json={"payouts": payouts}, headers=INTERNAL)


async def batch_results(client: httpx.AsyncClient, payouts: list[dict[str, Any]]) -> list[dict]:
    resp = await pay_batch(client, payouts)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert len(answer["results"]) == len(payouts)
    return answer["results"]


async def funded_project(
    client: httpx.AsyncClient, requester: Actor, *, reserved_cents: int, extra_cents: int = 0
) -> str:
    """A project id whose hold is `reserved_cents`, the requester keeping `extra_cents`."""
    total = reserved_cents + extra_cents
    await deposit(client, requester, f"{total // 100}.{total % 100:02d}")
    project_id = new_id()
    resp = await reserve(
        client, requester_id=requester.id, project_id=project_id, amount_cents=reserved_cents
    )
    assert resp.status_code == 201, resp.text
    return project_id


async def paid_cents(client: httpx.AsyncClient, worker: Actor) -> int:
    return cents((await balance(client, worker))["available"])


async def payout_transactions(db: asyncpg.Pool, keys: list[str]) -> list[asyncpg.Record]:
    """The payout rows of these keys, with the database transaction that wrote each (xmin)."""
    return await db.fetch(
        "SELECT key, assignment_id, xmin::text AS writer FROM ledger_transactions"
        " WHERE kind = 'payout' AND key = ANY($1::text[])",
        keys,
    )


async def test_a_batch_pays_every_item_in_one_database_transaction(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    crowd = [await create_worker(workers_client) for _ in range(3)]
    first = await funded_project(payments_client, requester, reserved_cents=600)
    second = await funded_project(payments_client, requester, reserved_cents=400, extra_cents=100)

    def body(project_id: str, worker: Actor, reward: int, fee: int, **kw: Any) -> dict:
        return payout_body(
            requester_id=requester.id,
            worker_id=worker.id,
            project_id=project_id,
            reward_cents=reward,
            fee_cents=fee,
            **kw,
        )

    payouts = (
        [body(first, crowd[i % 3], 80, 20) for i in range(6)]  # uses the hold up exactly
        + [body(second, crowd[i % 2], 100, 0) for i in range(3)]  # no fee leg
        + [body(second, crowd[2], 0, 0)]  # a zero payout: a transaction without legs
        + [body(second, crowd[0], 50, 10, source="available")]  # an override
    )
    results = await batch_results(payments_client, payouts)
    assert [r["status"] for r in results] == [201] * len(payouts)
    assert all(r["outcome"] == "applied" and r["problem"] is None for r in results)
    for sent, result in zip(payouts, results, strict=True):
        tx = result["transaction"]
        assert result["key"] == tx["key"] == sent["key"]
        assert (tx["kind"], tx["assignment_id"], tx["worker_id"]) == (
            "payout",
            sent["assignment_id"],
            sent["worker_id"],
        )
        assert (tx["amount_cents"], tx["fee_cents"], tx["source"]) == (
            sent["reward_cents"],
            sent["fee_cents"],
            sent["source"],
        )

    assert await balance(payments_client, requester) == {
        "available": "0.40",  # 1.00 kept, 0.60 paid by the override
        "reserved": "1.00",  # 6.00 + 4.00 held, 6.00 + 3.00 drawn
        "spent": "9.60",
    }
    assert [await paid_cents(payments_client, w) for w in crowd] == [
        160 + 200 + 50,
        160 + 100,
        160,
    ]
    holds = {
        r["project_id"]: (r["held_cents"], r["spent_cents"])
        for r in await db.fetch(
            "SELECT project_id, held_cents, spent_cents FROM project_holds WHERE requester_id = $1",
            requester.id,
        )
    }
    assert holds == {first: (0, 600), second: (100, 360)}

    rows = await payout_transactions(db, [p["key"] for p in payouts])
    assert len(rows) == len(payouts)
    assert len({r["writer"] for r in rows}) == 1  # one database transaction for the batch

    # Each account's entries read as if the payouts had been posted one after another.
    entries = await db.fetch(
        """
        SELECT e.account_id, e.amount_cents, e.balance_after_cents, a.balance_cents
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE e.transaction_id = ANY($1::text[])
        ORDER BY e.id
        """,
        [r["transaction"]["transaction_id"] for r in results],
    )
    assert len(entries) == 6 * 3 + 3 * 2 + 0 + 3
    by_account: dict[str, list[asyncpg.Record]] = {}
    for entry in entries:
        by_account.setdefault(entry["account_id"], []).append(entry)
    for account_entries in by_account.values():
        for before, after in itertools.pairwise(account_entries):
            assert (
                after["balance_after_cents"]
                == before["balance_after_cents"] + after["amount_cents"]
            )
        assert account_entries[-1]["balance_after_cents"] == account_entries[-1]["balance_cents"]
    await assert_ledger_ok(payments_client)


async def test_a_batch_replayed_in_full_or_in_part_moves_nothing_twice(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    project_id = await funded_project(payments_client, requester, reserved_cents=900)
    payouts = [
        payout_body(
            requester_id=requester.id,
            worker_id=worker.id,
            project_id=project_id,
            reward_cents=80,
            fee_cents=20,
        )
        for _ in range(9)
    ]
    old, new = payouts[:6], payouts[6:]
    first = await batch_results(payments_client, old)
    assert [r["status"] for r in first] == [201] * 6

    again = await batch_results(payments_client, old)
    assert [(r["status"], r["outcome"]) for r in again] == [(200, "replayed")] * 6
    assert [r["transaction"] for r in again] == [r["transaction"] for r in first]

    mixed_order = [old[1], new[0], old[4], new[1], new[2], old[0]]
    mixed = await batch_results(payments_client, mixed_order)
    assert [r["status"] for r in mixed] == [200, 201, 200, 201, 201, 200]
    assert mixed[0]["transaction"] == first[1]["transaction"]
    # The single call replays a key a batch applied, with the same body.
    single = await pay(payments_client, old[3])
    assert single.status_code == 200 and single.headers["Idempotent-Replayed"] == "true"
    assert single.json() == first[3]["transaction"]

    assert await paid_cents(payments_client, worker) == 9 * 80
    assert (await balance(payments_client, requester))["reserved"] == "0.00"
    rows = await payout_transactions(db, [p["key"] for p in payouts])
    assert sorted(r["assignment_id"] for r in rows) == sorted(p["assignment_id"] for p in payouts)
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize("round_number", range(3))
async def test_racing_batches_with_overlapping_keys_pay_each_assignment_once(
    payments_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db: asyncpg.Pool,
    round_number: int,
) -> None:
    requester = await create_requester(workers_client)
    crowd = [await create_worker(workers_client) for _ in range(4)]
    projects = [
        await funded_project(payments_client, requester, reserved_cents=20 * 100) for _ in range(2)
    ]
    payouts = [
        payout_body(
            requester_id=requester.id,
            worker_id=crowd[i % 4].id,
            project_id=projects[i % 2],
            reward_cents=80,
            fee_cents=20,
        )
        for i in range(40)
    ]
    shuffled = random.Random(round_number).sample(payouts, len(payouts))
    batches = [
        payouts[:30],
        list(reversed(payouts[10:])),
        shuffled,
        shuffled[::2],
    ]
    singles = [payouts[3], payouts[25], payouts[39]]
    answers = await asyncio.gather(
        *(pay_batch(payments_client, b) for b in batches),
        *(pay(payments_client, p) for p in singles),
    )
    batch_answers, single_answers = answers[: len(batches)], answers[len(batches) :]
    assert [a.status_code for a in batch_answers] == [200] * len(batches), [
        a.text for a in batch_answers if a.status_code != 200
    ]
    assert all(a.status_code in (200, 201) for a in single_answers), [
        a.text for a in single_answers
    ]
    applied: dict[str, int] = {}
    transaction_of: dict[str, set[str]] = {}
    for answer in batch_answers:
        for result in answer.json()["results"]:
            assert result["outcome"] in ("applied", "replayed"), result
            applied[result["key"]] = applied.get(result["key"], 0) + (result["status"] == 201)
            transaction_of.setdefault(result["key"], set()).add(
                result["transaction"]["transaction_id"]
            )
    for sent, answer in zip(singles, single_answers, strict=True):
        applied[sent["key"]] += answer.status_code == 201
        transaction_of[sent["key"]].add(answer.json()["transaction_id"])
    assert applied == {p["key"]: 1 for p in payouts}  # each key acted exactly once
    assert all(len(ids) == 1 for ids in transaction_of.values())

    rows = await payout_transactions(db, [p["key"] for p in payouts])
    assert sorted(r["assignment_id"] for r in rows) == sorted(p["assignment_id"] for p in payouts)
    assert [await paid_cents(payments_client, w) for w in crowd] == [10 * 80] * 4
    assert await balance(payments_client, requester) == {
        "available": "0.00",
        "reserved": "0.00",
        "spent": "40.00",
    }
    await assert_ledger_ok(payments_client)


async def test_one_bad_item_fails_alone_and_the_others_are_paid(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    project_id = await funded_project(
        payments_client, requester, reserved_cents=480, extra_cents=50
    )
    tag = new_id()

    def body(name: str, **kw: Any) -> dict:
        values: dict[str, Any] = {"reward_cents": 100, "fee_cents": 20, **kw}
        made = payout_body(
            requester_id=requester.id,
            worker_id=values.pop("worker_id", worker.id),
            project_id=project_id,
            **values,
        )
        return {**made, "key": f"{tag}:{name}"}

    paid_before = body("0-paid-alone")
    assert (await pay(payments_client, paid_before)).status_code == 201  # hold: 480 -> 360
    payouts = [
        body("1-good"),
        body("9-short"),  # walked last: 360 - 3 x 120 leaves nothing for it
        {**paid_before, "fee_cents": 21},  # its key, another body
        {**paid_before, "key": f"{tag}:4-same-assignment"},  # the assignment, another key
        body("1-unknown-worker", worker_id="NOSUCHWORKER" + new_id()),
        {**body("6-malformed"), "reward_cents": 1.5},
        body("2-good"),
        body("1-good"),  # the same key twice in one batch
        body("7-override-short", source="available"),  # 120 of the 50 available
        {**body("8-smuggled"), "status": "approved"},
        body("3-good"),
    ]
    results = await batch_results(payments_client, payouts)
    got = [(r["key"], r["status"], (r["problem"] or {}).get("code")) for r in results]
    assert got == [
        (f"{tag}:1-good", 201, None),
        (f"{tag}:9-short", 409, "reservation_exhausted"),
        (paid_before["key"], 409, "idempotency_key_reused"),
        (f"{tag}:4-same-assignment", 409, "already_paid"),
        (f"{tag}:1-unknown-worker", 404, "account_not_found"),
        (f"{tag}:6-malformed", 422, "validation_error"),
        (f"{tag}:2-good", 201, None),
        (f"{tag}:1-good", 422, "duplicate_key"),
        (f"{tag}:7-override-short", 402, "insufficient_funds"),
        (f"{tag}:8-smuggled", 422, "validation_error"),
        (f"{tag}:3-good", 201, None),
    ]
    short = results[1]["problem"]
    assert (short["held_cents"], short["needed_cents"], short["status"]) == (0, 120, 409)
    assert results[5]["problem"]["errors"] == [
        {"loc": ["body", "payouts", 5, "reward_cents"], "msg": "Input should be a valid integer"}
    ]
    assert results[9]["problem"]["errors"][0]["loc"] == ["body", "payouts", 9, "status"]
    assert all(r["transaction"] is None for r in results if r["outcome"] == "failed")

    # Nothing of a refused item was written; the good ones and the earlier payout were paid.
    written = await db.fetch(
        "SELECT key FROM ledger_transactions WHERE key LIKE $1 ORDER BY key", f"{tag}:%"
    )
    assert [r["key"] for r in written] == [
        f"{tag}:0-paid-alone",
        f"{tag}:1-good",
        f"{tag}:2-good",
        f"{tag}:3-good",
    ]
    assert await paid_cents(payments_client, worker) == 4 * 100
    assert await balance(payments_client, requester) == {
        "available": "0.50",
        "reserved": "0.00",
        "spent": "4.80",
    }
    await assert_ledger_ok(payments_client)

    # Sent again, the good ones replay and the bad ones are refused again; the unknown worker's
    # payout now meets the used-up hold first, as the single call would.
    again = await batch_results(payments_client, payouts)
    expected = [(key, 200 if status == 201 else status, code) for key, status, code in got]
    expected[4] = (f"{tag}:1-unknown-worker", 409, "reservation_exhausted")
    assert [(r["key"], r["status"], (r["problem"] or {}).get("code")) for r in again] == expected
    await assert_ledger_ok(payments_client)


async def test_a_batch_from_an_unknown_requester_is_refused_item_by_item(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    ghost = "NOSUCHREQUESTER" + new_id()
    payouts = [
        payout_body(
            requester_id=ghost,
            worker_id=worker.id,
            project_id=new_id(),
            reward_cents=10,
            fee_cents=2,
            source=source,
        )
        for source in ("reserved", "available")
    ]
    results = await batch_results(payments_client, payouts)
    assert [(r["status"], r["problem"]["code"]) for r in results] == [
        (409, "reservation_exhausted"),
        (404, "account_not_found"),
    ]
    # The single call answers the same.
    assert [(await pay(payments_client, p)).status_code for p in payouts] == [409, 404]
    await assert_ledger_ok(payments_client)


@pytest.mark.parametrize(
    "body",
    [
        {"payouts": []},
        {"payouts": [{"key": f"k{i}"} for i in range(501)]},
        {"payouts": {"key": "not a list"}},
        {"payouts": ["not an object"]},
        {"payouts": [{"key": "k"}], "surprise": True},
        {},
    ],
)
async def test_a_batch_that_is_not_a_list_of_1_to_500_objects_is_422(
    payments_client: httpx.AsyncClient, db: asyncpg.Pool, body: dict
) -> None:
    before = await db.fetchval("SELECT count(*) FROM ledger_transactions")
    resp = await payments_client.post(BATCH, json=body, headers=INTERNAL)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "validation_error"
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions") == before


async def test_the_batch_needs_the_internal_token(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    for headers in ({}, {"X-Internal-Token": "nope-nope-nope-nope"}, requester.headers):
        resp = await payments_client.post(BATCH, json={"payouts": [{}]}, headers=headers)
        assert resp.status_code == 401
