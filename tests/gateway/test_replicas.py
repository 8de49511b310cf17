"""What replicas behind the gateway must get right, shown on two processes per service behind the
real nginx (tests/gateway/conftest.py): the routing (by key for tasks, round robin otherwise,
nothing internal), a revocation refused by every process at once, the timers and the outbox
acting once per item whichever replica runs them, rate limits that hold across replicas, and
`manage.py run --replicas` itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from devtools.gateway import free_port
from tests.conftest import INTERNAL_TOKEN, ROOT
from tests.e2e.test_demo import test_demo_story_adds_up_to_the_cent
from tests.e2e.test_readme import test_readme_walkthrough_works_as_written
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import accepted, cat_tasks, published_project, workers
from tests.gateway.conftest import ACCOUNT_LIMIT_PER_HOUR, GatewayStack
from tests.reliability.helpers import (
    ledger_check,
    outbox_stats,
    submitted_work,
    wait_for,
)
from tests.services.payments.bonuses.test_bonuses import test_100_concurrent_bonuses_never_overdraw
from tests.services.payments.deposits.test_deposits import (
    test_idempotency_key_replays_and_concurrent_replays_act_once,
)
from tests.services.payments.withdrawals.test_withdrawals import (
    test_100_concurrent_withdrawals_never_overdraw,
)
from tests.services.tasks.lifecycle.test_accept import (
    test_one_worker_accepting_many_at_once_gets_each_task_once,
)
from tests.services.tasks.lifecycle.test_accept_fused import test_20_workers_race_for_7_slots
from tests.services.tasks.lifecycle.test_submit_return import (
    test_concurrent_submits_and_a_return_of_one_assignment_decide_once,
)
from tests.services.tasks.projects.test_lifecycle import (
    test_publishing_twice_is_409_even_concurrently_and_reserves_once,
)
from tests.services.workers.accounts.test_account_hardening import (
    test_concurrent_retries_of_one_sign_up_share_one_account,
)
from tests.services.workers.accounts.test_accounts import (
    test_keys_are_hashed_listed_and_revoked_at_once,
)
from tests.services.workers.attempts.test_attempts import (
    test_concurrent_submits_of_one_attempt_grant_once,
)

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}

# ---------------------------------------------------------------- existing tests, through nginx
# The end-to-end story and the race tests, unchanged, through nginx and two replicas of each
# service (tests/gateway/conftest.py overrides the client fixtures they take). Imported, not
# copied: pytest collects each function here again, and its fixtures resolve to the gateway's.
# Concurrent requests of one test land on both replicas of workers and payments (round robin)
# and, for tasks, on the replica its caller's key hashes to (several callers: both), so what
# they show exact is exact across processes: claims, idempotency replays, balances, the outbox
# payouts that the demo waits for, a revocation (round robin sends the request after the
# revoking one to the other workers replica). Each runs in a second or two. The races that call
# /internal/* themselves (reservations, payouts) are not here: the gateway never routes it.
# All in this one module: `manage.py test` distributes by module (--dist loadscope), so the
# stack starts once per run.
__all__ = [  # re-exported: collected here again, through the gateway
    "test_20_workers_race_for_7_slots",
    "test_100_concurrent_bonuses_never_overdraw",
    "test_100_concurrent_withdrawals_never_overdraw",
    "test_concurrent_retries_of_one_sign_up_share_one_account",
    "test_concurrent_submits_and_a_return_of_one_assignment_decide_once",
    "test_concurrent_submits_of_one_attempt_grant_once",
    "test_demo_story_adds_up_to_the_cent",
    "test_idempotency_key_replays_and_concurrent_replays_act_once",
    "test_keys_are_hashed_listed_and_revoked_at_once",
    "test_one_worker_accepting_many_at_once_gets_each_task_once",
    "test_publishing_twice_is_409_even_concurrently_and_reserves_once",
    "test_readme_walkthrough_works_as_written",
]


async def _served_by(stack: GatewayStack, client: httpx.AsyncClient, path: str, **kw) -> str:
    """Send one request with a fresh request id; the replica whose access log has it."""
    rid = "gw-" + uuid.uuid4().hex[:20]
    headers = {"X-Request-ID": rid, **kw.pop("headers", {})}
    resp = await client.get(path, headers=headers, **kw)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"] == rid  # nginx kept the caller's id
    for _ in range(50):  # the access line is written just after the response
        found = stack.served_by(rid)
        if found:
            assert len(found) == 1, found
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no replica logged {rid}")


async def test_round_robin_for_workers_and_payments_and_the_key_picks_the_tasks_replica(
    gateway_stack: GatewayStack, tasks_client, workers_client, payments_client
) -> None:
    worker = await create_worker(workers_client)
    served = [
        await _served_by(gateway_stack, workers_client, "/v1/accounts/me", headers=worker.headers)
        for _ in range(4)
    ]
    assert sorted(set(served)) == ["workers-1", "workers-2"], served
    served = [
        await _served_by(gateway_stack, payments_client, "/v1/balance", headers=worker.headers)
        for _ in range(4)
    ]
    assert sorted(set(served)) == ["payments-1", "payments-2"], served

    # tasks: every request of one key on one replica; across keys, both replicas
    crowd = await workers(workers_client, 12)
    homes = {}
    for someone in crowd:
        seen = {
            await _served_by(
                gateway_stack, tasks_client, "/v1/work/projects", headers=someone.headers
            )
            for _ in range(3)
        }
        assert len(seen) == 1, f"{someone.id}'s requests went to {seen}"
        homes[someone.id] = seen.pop()
    assert set(homes.values()) == {"tasks-1", "tasks-2"}, homes


async def test_internal_routes_and_metrics_are_not_routed_by_the_gateway(
    gateway_stack: GatewayStack,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for svc, path in (
            ("payments", "/internal/ledger/check"),
            ("tasks", "/internal/outbox/stats"),
            ("tasks", "/internal/timers/stats"),
            ("workers", "/metrics"),
            ("tasks", "/metrics"),
        ):
            through = await client.get(gateway_stack.urls[svc] + path, headers=INTERNAL)
            assert through.status_code == 404, (path, through.text)
            assert through.headers["content-type"] == "application/problem+json"
            assert through.json()["code"] == "not_found"
        # each replica serves them to whoever reaches it directly (the other services)
        for url in gateway_stack.replica_urls["payments"]:
            resp = await client.get(url + "/internal/ledger/check", headers=INTERNAL)
            assert resp.status_code == 200 and resp.json()["ok"] is True, resp.text


async def test_a_revoked_key_is_refused_by_every_replica_at_once(
    gateway_stack: GatewayStack, workers_client
) -> None:
    """Each process caches the keys it has seen; the revocation reaches the others through
    Postgres' notification (shared.auth). Every replica of every service has the key cached
    when it is revoked, and none accepts it on the very next request."""
    worker = await create_worker(workers_client)
    created = await workers_client.post("/v1/accounts/me/api-keys", headers=worker.headers)
    assert created.status_code == 201, created.text
    key = created.json()
    headers = {"Authorization": f"Bearer {key['api_key']}"}
    probes = {"tasks": "/v1/work/projects", "workers": "/v1/accounts/me", "payments": "/v1/balance"}
    async with httpx.AsyncClient(timeout=10) as client:
        for svc, urls in gateway_stack.replica_urls.items():
            for url in urls:  # warm every process's cache with the key
                assert (await client.get(url + probes[svc], headers=headers)).status_code == 200
        revoked = await workers_client.delete(
            f"/v1/accounts/me/api-keys/{key['id']}", headers=worker.headers
        )
        assert revoked.status_code == 204
        statuses = {
            (svc, url): (await client.get(url + probes[svc], headers=headers)).status_code
            for svc, urls in gateway_stack.replica_urls.items()
            for url in urls
        }
    assert set(statuses.values()) == {401}, statuses


async def test_one_idempotency_key_sent_to_both_replicas_at_once_acts_once(
    gateway_stack: GatewayStack, workers_client, payments_client
) -> None:
    """Twenty copies of one keyed deposit, half to each payments replica directly, at once:
    one deposit, one answer replayed to every copy, whichever process stored it."""
    requester = await create_requester(workers_client)
    headers = {**requester.headers, "Idempotency-Key": f"both-{uuid.uuid4().hex}"}
    urls = gateway_stack.replica_urls["payments"]
    async with httpx.AsyncClient(timeout=30) as client:
        results = await asyncio.gather(
            *(
                client.post(urls[i % 2] + "/v1/deposits", json={"amount": "3.00"}, headers=headers)
                for i in range(20)
            )
        )
    assert {r.status_code for r in results} == {201}, {r.text for r in results}
    assert len({r.json()["id"] for r in results}) == 1
    assert sum(r.headers["Idempotent-Replayed"] == "false" for r in results) == 1
    balance = await payments_client.get("/v1/balance", headers=requester.headers)
    assert balance.json()["available"] == "3.00"


async def test_timers_and_outbox_act_once_per_item_across_replicas(
    gateway_stack: GatewayStack, tasks_client, workers_client, payments_client, db
) -> None:
    """Both tasks replicas sweep the one database (grace 0, batches of 5, so they interleave):
    what they acted on adds up to exactly the items that fell due, each was acted on once, and
    every approval was paid exactly once through the outbox (whichever replica delivered it).
    The counts are the differences of each replica's stats around the test, so what the other
    tests here did before does not matter."""
    approving, _, approve_ids = await submitted_work(
        tasks_client, workers_client, payments_client, n_workers=6, per_worker=10
    )
    lapsing = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(20)
    )
    holders = await workers(workers_client, 4)
    deadline_ids = [
        (await accepted(tasks_client, w, lapsing.id))["assignment_id"]
        for w in holders
        for _ in range(5)
    ]
    replicas = gateway_stack.replica_urls["tasks"]

    async def stats() -> list[dict]:
        async with httpx.AsyncClient(timeout=10) as client:
            out = []
            for url in replicas:
                resp = await client.get(url + "/internal/timers/stats", headers=INTERNAL)
                assert resp.status_code == 200, resp.text
                out.append(resp.json())
            return out

    def acted(now: list[dict], sweep: str) -> list[int]:
        return [s["sweeps"][sweep]["acted"] for s in now]

    before = await stats()
    async with db.acquire() as conn, conn.transaction():  # all due at the same instant
        await conn.execute(
            "UPDATE assignments SET auto_approve_at = now() WHERE id = ANY($1)", approve_ids
        )
        await conn.execute(
            "UPDATE assignments SET deadline = now() WHERE id = ANY($1)", deadline_ids
        )

    async def caught_up() -> bool:
        due = await db.fetchval(
            "SELECT count(*) FROM assignments WHERE id = ANY($1) AND status IN"
            " ('submitted', 'accepted')",
            approve_ids + deadline_ids,
        )
        return due == 0 and (await outbox_stats(tasks_client))["pending"] == 0

    await wait_for(caught_up, within=30, what="timers and outbox caught up")
    after = await stats()
    assert len({s["replica"] for s in after}) == 2  # two processes answered
    approvals = [
        b - a
        for a, b in zip(
            acted(before, "auto_approvals"), acted(after, "auto_approvals"), strict=True
        )
    ]
    deadlines = [
        b - a
        for a, b in zip(
            acted(before, "assignment_deadlines"), acted(after, "assignment_deadlines"), strict=True
        )
    ]
    print(f"\nauto-approvals per replica {approvals}, deadlines per replica {deadlines}")
    assert sum(approvals) == 60 and sum(deadlines) == 20, (approvals, deadlines)
    assert all(a + d > 0 for a, d in zip(approvals, deadlines, strict=True)), "one did it all"
    statuses = dict(
        await db.fetch(
            "SELECT status, count(*) FROM assignments WHERE id = ANY($1) GROUP BY status",
            approve_ids + deadline_ids,
        )
    )
    assert statuses == {"approved": 60, "expired": 20}
    # Each approval paid exactly once, nothing else paid; the holds exact. (Only these projects:
    # the payments tests run here insert hand-made assignments the lifecycle never writes.)
    paid = dict(
        await db.fetch(
            "SELECT a.id, count(l.id) FROM assignments a LEFT JOIN ledger_transactions l"
            " ON l.assignment_id = a.id AND l.kind = 'payout' WHERE a.id = ANY($1) GROUP BY a.id",
            approve_ids + deadline_ids,
        )
    )
    assert paid == {**dict.fromkeys(approve_ids, 1), **dict.fromkeys(deadline_ids, 0)}
    holds = dict(
        await db.fetch(
            "SELECT project_id, held_cents FROM project_holds WHERE project_id = ANY($1)",
            [approving.id, lapsing.id],
        )
    )
    # paid out; the expired slots reopened with their money kept
    assert holds == {approving.id: 0, lapsing.id: 20 * lapsing.slot_cents}, holds
    assert (await outbox_stats(tasks_client))["parked"] == 0
    assert (await ledger_check(payments_client))["ok"]


async def test_the_account_limit_holds_across_replicas(
    gateway_stack: GatewayStack, workers_client, db
) -> None:
    """The stack's workers allow an account 120 requests an hour (conftest.STACK_ENV): through
    the gateway, alternating between the two replicas, 120 pass, not 240 (each process used to
    count alone), and a burst after that is refused by both."""
    limit = ACCOUNT_LIMIT_PER_HOUR
    # Counted in the database's hour: not in its last seconds, so the sliding window's
    # carry-over into the next hour cannot let one more request through at the boundary.
    into_hour = await db.fetchval("SELECT (extract(epoch FROM clock_timestamp()) % 3600)::float8")
    if into_hour > 3570:
        await asyncio.sleep(3601 - into_hour)
    worker = await create_worker(workers_client)  # sign-up is anonymous: not counted
    served, statuses = [], []
    for _ in range(limit + 10):
        rid = "rl-" + uuid.uuid4().hex[:20]
        resp = await workers_client.get(
            "/v1/accounts/me", headers={**worker.headers, "X-Request-ID": rid}
        )
        statuses.append(resp.status_code)
        served.append(rid)
    burst = await asyncio.gather(
        *(workers_client.get("/v1/accounts/me", headers=worker.headers) for _ in range(20))
    )
    assert statuses == [200] * limit + [429] * 10, statuses
    assert {r.status_code for r in burst} == {429}
    await asyncio.sleep(0.2)
    replicas = {name for rid in served[:20] for name in gateway_stack.served_by(rid)}
    assert replicas == {"workers-1", "workers-2"}, replicas


def test_manage_py_run_with_replicas_serves_the_api_through_nginx(
    gateway_stack: GatewayStack,
) -> None:
    """`manage.py run --replicas 1` on the stack's database: nginx on the three public ports,
    a process per service behind it (the fixture runs two of each with the same code:
    devtools.gateway); Ctrl-C stops everything."""
    ports = {svc: free_port() for svc in ("tasks", "workers", "payments")}
    env = {
        **os.environ,
        "DATABASE_URL": gateway_stack.database_url,
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        **{f"{svc.upper()}_PORT": str(port) for svc, port in ports.items()},
        **{f"{svc.upper()}_DB_POOL_SIZE": "4" for svc in ports},
        **{f"{svc.upper()}_DB_DRIVER_POOL_SIZE": "4" for svc in ports},
    }
    # devtools.cli.main is what manage.py hands over to once its venv is in place.
    run = "import sys; from devtools.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", run, "run", "--replicas", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "(Ctrl-C to stop)" in line:
                break
        text = "".join(output)
        assert "(Ctrl-C to stop)" in text, text[-3000:]
        assert text.count("    replica http://127.0.0.1:") == 3, text
        # the printed demo command points the demo's /internal/* calls at the replicas
        demo = next(line for line in output if "manage.py demo" in line).split()
        internal_urls = [demo[i + 1] for i, arg in enumerate(demo) if arg.endswith("-internal-url")]
        assert len(internal_urls) == 2, demo
        with httpx.Client(timeout=10) as client:
            # the whole public API on each public port; /internal/* on none
            for port in ports.values():
                base = f"http://127.0.0.1:{port}"
                email = f"run-{uuid.uuid4().hex[:12]}@example.com"
                signup = client.post(
                    base + "/v1/accounts",
                    json={"kind": "requester", "name": "Run", "email": email},
                )
                assert signup.status_code == 201, signup.text
                key = {"Authorization": f"Bearer {signup.json()['api_key']}"}
                assert client.get(base + "/v1/accounts/me", headers=key).status_code == 200
                assert client.get(base + "/v1/balance", headers=key).status_code == 200
                assert client.get(base + "/v1/projects", headers=key).status_code == 200
                internal = client.get(base + "/internal/ledger/check", headers=INTERNAL)
                assert internal.status_code == 404
            tasks_replica, payments_replica = internal_urls
            stats = client.get(tasks_replica + "/internal/outbox/stats", headers=INTERNAL)
            assert stats.status_code == 200 and "pending" in stats.json(), stats.text
            check = client.get(payments_replica + "/internal/ledger/check", headers=INTERNAL)
            assert check.status_code == 200 and check.json()["ok"] is True, check.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    assert proc.returncode == 0, "".join(output) + (rest or "")


def test_run_refuses_a_bad_replica_count() -> None:
    from devtools.cli import _replicas_argument

    assert _replicas_argument([]) is None
    assert _replicas_argument(["--replicas", "3"]) == 3
    assert _replicas_argument(["--replicas=2"]) == 2
    for bad in (["--replicas", "0"], ["--replicas"], ["--replicas", "two"], ["--other"]):
        with pytest.raises(ValueError):
            _replicas_argument(bad)
