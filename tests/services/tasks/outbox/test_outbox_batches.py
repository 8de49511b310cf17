"""The outbox sends payouts in batches: fewer calls than messages, each message still settled on
its own answer, and a payments outage in the middle of a batch retried to exactly-once payment.

Most tests run on a private stack (their own database and service processes, as the fault tests
do) whose tasks process does not deliver: the test's own deliverer is then the only one, so the
HTTP calls it makes can be counted exactly, with an httpx hook on the requests that really go
out to the real payments process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.tasks.lifecycle.messages import enqueue
from services.tasks.outbox.service import OutboxDeliverer
from shared.database import Database, make_pool
from shared.http import InternalClient
from shared.ids import new_id
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import Actor
from tests.fixtures.tasks import (
    Published,
    assert_ledger_ok,
    balance,
    cat_tasks,
    published_project,
    submitted,
    wait_delivered,
    workers,
)
from tests.reliability.conftest import Clients, Stack, create_migrated_database, drop_database
from tests.reliability.helpers import assert_nothing_half_changed, wait_for

PAYOUT_BATCH_PATH = "/internal/payouts/batch"
SINGLE_PAYOUT_PATH = "/internal/payouts"


# ------------------------------------------------------------------------ the shared stack


async def test_approvals_are_paid_in_fewer_payments_transactions_than_payouts(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """Whoever delivers (this process or the live tasks process), payments writes a batch's
    payouts in one database transaction: the ledger rows tell how many transactions there were
    (`xmin`), independently of the deliverer."""
    approvals = 40
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(approvals)
    )
    crowd = await workers(workers_client, approvals)
    done = [await submitted(tasks_client, w, project.id) for w in crowd]
    resp = await tasks_client.post(
        "/v1/assignments/review",
        json={"approve": [{"id": d["id"]} for d in done]},
        headers=project.requester.headers,
    )
    assert resp.status_code == 200, resp.text
    await wait_delivered(db, [f"pay:{d['id']}" for d in done], apps)
    rows = await db.fetch(
        "SELECT assignment_id, xmin::text AS writer FROM ledger_transactions"
        " WHERE kind = 'payout' AND project_id = $1",
        project.id,
    )
    assert sorted(r["assignment_id"] for r in rows) == sorted(d["id"] for d in done)
    writers = {r["writer"] for r in rows}
    assert len(writers) <= approvals // 8, f"{len(writers)} transactions for {approvals} payouts"
    assert (await balance(payments_client, crowd[0]))["available"] == 10
    await assert_ledger_ok(payments_client)


# ------------------------------------------------------------------------ a private stack


@dataclass
class Private:
    stack: Stack
    database_url: str
    api: Clients
    database: Database
    db: asyncpg.Pool


@pytest.fixture(scope="module")
def private_stack(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    url = create_migrated_database(postgres_server)
    stack = Stack(url, tmp_path_factory.mktemp("outbox-batches"), {"TASKS_OUTBOX_ENABLED": "false"})
    try:
        stack.start_all("tasks", "workers", "payments")
        yield stack, url
    finally:
        for svc in list(stack.procs):
            stack.stop(svc, kill=True)
        drop_database(url)


@pytest.fixture(scope="module")
async def private(private_stack: tuple[Stack, str]) -> AsyncIterator[Private]:
    stack, url = private_stack
    database = Database(
        pool=await make_pool(url, max_size=4, application_name="outbox-batches-test"),
        hot_pool=await make_pool(url, max_size=1, application_name="outbox-batches-test", hot=True),
    )
    db = await asyncpg.create_pool(url, min_size=1, max_size=4)
    api = Clients(stack)
    try:
        yield Private(stack, url, api, database, db)
    finally:
        await api.aclose()
        await db.close()
        await database.close()


class CountedPayments:
    """A payments client that counts the requests it really sends, per path."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self.calls: Counter[str] = Counter()
        self.sent = asyncio.Event()

        async def count(request: httpx.Request) -> None:
            self.calls[request.url.path] += 1
            self.sent.set()

        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=2.0), event_hooks={"request": [count]}
        )
        self.client = InternalClient(self.http, base_url, INTERNAL_TOKEN, "payments")


class WithoutBatchEndpoint(InternalClient):
    """Calls a payments that has no batch endpoint (an older version during a rolling deploy):
    the batch call goes to a path the real service does not serve."""

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        if path == PAYOUT_BATCH_PATH:
            path = PAYOUT_BATCH_PATH + "-not-served-here"
        return await super().request(method, path, **kw)


def deliverer_for(private: Private, payments: InternalClient) -> OutboxDeliverer:
    return OutboxDeliverer(
        database=private.database,
        payments=payments,
        batch_size=100,
        concurrency=8,
        poll_interval_seconds=1,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.2,
        lease_seconds=30,
    )


async def approved_work(
    private: Private, *, approvals: int, spare_slots: int = 0
) -> tuple[Published, list[Actor], list[str]]:
    """A project with `approvals` submitted and approved assignments (one bulk review), and
    `spare_slots` more slots whose money stays held; their payouts wait in the outbox."""
    api = private.api
    project = await published_project(
        api.tasks, api.workers, api.payments, tasks=cat_tasks(approvals + spare_slots)
    )
    crowd = await workers(api.workers, approvals)
    done = list(await asyncio.gather(*(submitted(api.tasks, w, project.id) for w in crowd)))
    resp = await api.tasks.post(
        "/v1/assignments/review",
        json={"approve": [{"id": d["id"]} for d in done]},
        headers=project.requester.headers,
    )
    assert resp.status_code == 200, resp.text
    assert all(item["status"] == "ok" for item in resp.json()["results"]), resp.text
    return project, crowd, [d["id"] for d in done]


def as_dict(value: Any) -> dict[str, Any]:
    """A jsonb value read with the plain asyncpg pool (which hands it over as text)."""
    return value if isinstance(value, dict) else orjson.loads(value)


async def outbox_rows(private: Private, keys: list[str]) -> dict[str, asyncpg.Record]:
    rows = await private.db.fetch(
        "SELECT key, attempts, delivered_at, parked_at, last_error FROM outbox"
        " WHERE key = ANY($1::text[])",
        keys,
    )
    return {r["key"]: r for r in rows}


async def deliver_until_settled(
    deliverer: OutboxDeliverer, private: Private, keys: list[str]
) -> dict[str, asyncpg.Record]:
    """Delivery passes until every message is delivered or parked (retries back off briefly)."""
    rows: dict[str, asyncpg.Record] = {}

    async def settled() -> bool:
        nonlocal rows
        await deliverer.deliver_due()
        rows = await outbox_rows(private, keys)
        return len(rows) == len(keys) and all(
            r["delivered_at"] is not None or r["parked_at"] is not None for r in rows.values()
        )

    await wait_for(settled, within=30, what="every message settled", every=0.05)
    return rows


async def assert_paid_once(private: Private, project: Published, ids: list[str]) -> None:
    paid = await private.db.fetch(
        "SELECT assignment_id, count(*) AS n FROM ledger_transactions"
        " WHERE kind = 'payout' AND project_id = $1 GROUP BY assignment_id",
        project.id,
    )
    assert sorted(r["assignment_id"] for r in paid) == sorted(ids)
    assert {r["n"] for r in paid} == {1}
    await assert_ledger_ok(private.api.payments)
    await assert_nothing_half_changed(private.db)


async def test_a_pass_sends_its_payouts_in_one_call(private: Private) -> None:
    project, crowd, ids = await approved_work(private, approvals=30)
    payments = CountedPayments(private.stack.urls["payments"])
    deliverer = deliverer_for(private, payments.client)
    try:
        report = await deliverer.deliver_due()
    finally:
        await payments.http.aclose()
    assert (report.delivered, report.retried, report.parked) == (30, 0, 0), report.errors
    assert payments.calls == {PAYOUT_BATCH_PATH: 1}  # one call for 30 messages
    rows = await outbox_rows(private, [f"pay:{i}" for i in ids])
    assert all(r["delivered_at"] is not None and r["attempts"] == 1 for r in rows.values())
    await assert_paid_once(private, project, ids)
    assert {(await balance(private.api.payments, w))["available"] for w in crowd} == {10}


async def test_a_refused_item_is_parked_alone_and_the_rest_of_its_batch_delivered(
    private: Private,
) -> None:
    project, _, ids = await approved_work(private, approvals=6, spare_slots=4)
    real = await private.db.fetchval("SELECT payload FROM outbox WHERE key = $1", f"pay:{ids[0]}")
    payload = {k: v for k, v in as_dict(real).items() if k != "key"}
    bad = {
        # the same assignment under another key: payments pays an assignment once
        f"pay:{ids[0]}:again": payload,
        # more than the project holds
        f"pay:{new_id()}:too-big": {
            **payload,
            "assignment_id": new_id(),
            "reward_cents": 10**9,
        },
        # a worker that does not exist
        f"pay:{new_id()}:nobody": {
            **payload,
            "assignment_id": new_id(),
            "worker_id": "NOSUCHWORKER" + new_id(),
        },
    }
    async with private.database.transaction() as tx:
        for key, body in bad.items():
            await enqueue(tx, kind="payout", key=key, payload=body)

    payments = CountedPayments(private.stack.urls["payments"])
    deliverer = deliverer_for(private, payments.client)
    try:
        report = await deliverer.deliver_due()
    finally:
        await payments.http.aclose()
    assert (report.delivered, report.retried, report.parked) == (6, 0, 3), report.errors
    assert payments.calls == {PAYOUT_BATCH_PATH: 1}
    rows = await outbox_rows(private, [f"pay:{i}" for i in ids] + list(bad))
    assert all(rows[f"pay:{i}"]["delivered_at"] is not None for i in ids)
    refused = [rows[key]["last_error"].split(":")[0] for key in bad]
    assert refused == ["409 already_paid", "409 reservation_exhausted", "404 account_not_found"]
    assert all(rows[key]["parked_at"] is not None for key in bad)
    await assert_paid_once(private, project, ids)


async def test_a_batch_refused_as_a_whole_is_sent_again_message_by_message(
    private: Private,
) -> None:
    project, _, ids = await approved_work(private, approvals=5)
    payments = CountedPayments(private.stack.urls["payments"])
    older = WithoutBatchEndpoint(
        payments.http, private.stack.urls["payments"], INTERNAL_TOKEN, "payments"
    )
    deliverer = deliverer_for(private, older)
    try:
        report = await deliverer.deliver_due()
    finally:
        await payments.http.aclose()
    assert (report.delivered, report.retried, report.parked) == (5, 0, 0), report.errors
    assert payments.calls == {PAYOUT_BATCH_PATH + "-not-served-here": 1, SINGLE_PAYOUT_PATH: 5}
    await assert_paid_once(private, project, ids)


async def _payments_waiting_on_a_lock(private: Private) -> bool:
    return bool(
        await private.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'payments' AND wait_event_type = 'Lock'"
        )
    )


async def test_payments_killed_inside_a_batch_retries_every_message_and_pays_each_once(
    private: Private,
) -> None:
    """Payments dies while its batch transaction is open (held up on the project's hold row,
    which the test has locked): the call fails, every message of the batch is retried, and
    once payments is back each assignment is paid exactly once."""
    project, _, ids = await approved_work(private, approvals=40)
    keys = [f"pay:{i}" for i in ids]
    payments = CountedPayments(private.stack.urls["payments"])
    deliverer = deliverer_for(private, payments.client)
    blocker = await private.db.acquire()
    try:
        hold_lock = blocker.transaction()
        await hold_lock.start()
        await blocker.execute(
            "SELECT 1 FROM project_holds WHERE project_id = $1 FOR UPDATE", project.id
        )
        first_pass = asyncio.create_task(deliverer.deliver_due())
        await wait_for(
            lambda: _payments_waiting_on_a_lock(private),
            within=15,
            what="payments inside the batch, waiting for the hold",
            every=0.02,
        )
        await asyncio.to_thread(private.stack.stop, "payments", kill=True)
        await hold_lock.rollback()
        report = await first_pass
    finally:
        await private.db.release(blocker)
    assert (report.delivered, report.retried, report.parked) == (0, 40, 0), report.errors
    assert payments.calls == {PAYOUT_BATCH_PATH: 1}
    rows = await outbox_rows(private, keys)
    assert all(r["delivered_at"] is None and r["parked_at"] is None for r in rows.values())
    assert all("unavailable" in r["last_error"] for r in rows.values())
    assert not await private.db.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'payout' AND project_id = $1",
        project.id,
    )  # the killed batch's transaction never committed

    private.stack.start("payments")
    await asyncio.to_thread(private.stack.wait_healthy, "payments")
    try:
        rows = await deliver_until_settled(deliverer, private, keys)
    finally:
        await payments.http.aclose()
    assert all(r["delivered_at"] is not None and r["attempts"] == 2 for r in rows.values())
    assert payments.calls == {PAYOUT_BATCH_PATH: 2}
    await assert_paid_once(private, project, ids)


async def test_a_batch_applied_after_the_caller_gave_up_is_delivered_as_replays(
    private: Private,
) -> None:
    """The call times out while payments waits on the hold row; payments then applies the
    batch anyway. The retry finds every key applied (replays) and counts them delivered."""
    project, crowd, ids = await approved_work(private, approvals=20)
    keys = [f"pay:{i}" for i in ids]
    payments = CountedPayments(private.stack.urls["payments"], timeout_seconds=1.0)
    deliverer = deliverer_for(private, payments.client)
    blocker = await private.db.acquire()
    try:
        hold_lock = blocker.transaction()
        await hold_lock.start()
        await blocker.execute(
            "SELECT 1 FROM project_holds WHERE project_id = $1 FOR UPDATE", project.id
        )
        report = await deliverer.deliver_due()  # gives up after its 1 s timeout
        assert await _payments_waiting_on_a_lock(private)
        await hold_lock.rollback()
    finally:
        await private.db.release(blocker)
    assert (report.delivered, report.retried) == (0, 20), report.errors

    async def applied() -> bool:
        return (
            await private.db.fetchval(
                "SELECT count(*) FROM ledger_transactions"
                " WHERE kind = 'payout' AND project_id = $1",
                project.id,
            )
            == 20
        )

    await wait_for(applied, within=15, what="payments applied the abandoned batch")
    try:
        rows = await deliver_until_settled(deliverer, private, keys)
    finally:
        await payments.http.aclose()
    assert all(r["delivered_at"] is not None and r["attempts"] == 2 for r in rows.values())
    assert payments.calls == {PAYOUT_BATCH_PATH: 2}
    await assert_paid_once(private, project, ids)
    assert {(await balance(private.api.payments, w))["available"] for w in crowd} == {10}
