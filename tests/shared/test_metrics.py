"""`/metrics`: scraped from the real apps after real traffic (shared/metrics.py).

- requests per route TEMPLATE and status (never a raw id), with a latency histogram;
- the database pools (acquire wait, size, in use);
- payouts per second and the money they move;
- the outbox backlog and the timers' lag, sampled from the database;
- the ledger check's gauge, which turns 0 when an invariant breaks and 1 when it holds again;
- several processes sharing PROMETHEUS_MULTIPROC_DIR answer for all of them;
- what the request middleware costs.

Counters are process-wide (other apps of this test process add to them), so the tests compare
a scrape before with one after; the gauges come from a private database (observed_stack).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from services.payments.ledger import repository as ledger_repository
from services.payments.ledger.monitor import run_ledger_check
from services.tasks.timers.service import SWEEPS
from shared.database import make_pool
from shared.metrics import (
    RequestMetricsMiddleware,
    observe_acquire,
    refresh_pool_gauges,
    render,
    unwatch,
    watch_database,
)
from tests.conftest import INTERNAL_TOKEN, ROOT, free_port, service_env
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import deposit
from tests.fixtures.tasks import (
    accepted,
    approve,
    cat_tasks,
    published_project,
    submit,
    wait_delivered,
)
from tests.shared.observed_stack import (
    Samples,
    Stack,
    fresh_database,
    parse_samples,
    running_stack,
    scrape,
    value,
)

DURATION = "marketplace_http_request_duration_seconds"
SAMPLE_SECONDS = 0.2


@pytest.fixture(scope="module")
def private_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
async def stack(private_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        private_url,
        metrics_sample_seconds=SAMPLE_SECONDS,
        ledger_check_interval_seconds=SAMPLE_SECONDS,
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def private_db(private_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(private_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


async def until(
    client: httpx.AsyncClient, condition: Callable[[Samples], bool], within: float = 10.0
) -> Samples:
    """Scrape until `condition` holds (the gauges are sampled in the background)."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(client)
        if condition(samples):
            return samples
        if time.monotonic() > deadline:
            interesting = {
                k: v for k, v in samples.items() if not k[0].startswith(("process_", "python_"))
            }
            raise AssertionError(f"condition not met within {within}s: {interesting}")
        await asyncio.sleep(0.05)


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# --------------------------------------------------------------------------- requests


async def test_an_approval_is_measured_per_route_template(
    stack: Stack, private_db: asyncpg.Pool
) -> None:
    before = await scrape(stack.tasks)
    before_payments = await scrape(stack.payments)
    published = await published_project(
        stack.tasks, stack.workers, stack.payments, tasks=cat_tasks(2)
    )
    worker = await create_worker(stack.workers)
    work = await accepted(stack.tasks, worker, published.id)
    assignment_id = work["assignment_id"]
    assert (await submit(stack.tasks, worker, assignment_id, {"label": "cat"})).status_code == 200
    assert (await approve(stack.tasks, published.requester, assignment_id)).status_code == 200
    headers = published.requester.headers
    assert (
        await stack.tasks.get(f"/v1/projects/{published.id}", headers=headers)
    ).status_code == 200
    missing = "0" * 26
    assert (await stack.tasks.get(f"/v1/projects/{missing}", headers=headers)).status_code == 404
    assert (await stack.tasks.get(f"/no/such/{published.id}")).status_code == 404
    assert (await stack.tasks.request("BREW", "/v1/projects")).status_code == 405
    after = await scrape(stack.tasks)

    def count(method: str, route: str, status: str) -> float:
        return _delta(
            before,
            after,
            f"{DURATION}_count",
            service="tasks",
            method=method,
            route=route,
            status=status,
        )

    approve_route = "/v1/assignments/{assignment_id}/approve"
    assert count("POST", "/v1/work/projects/{project_id}/accept", "201") == 1
    assert count("POST", "/v1/assignments/{assignment_id}/submit", "200") == 1
    assert count("POST", approve_route, "200") == 1
    assert count("GET", "/v1/projects/{project_id}", "200") == 1
    assert count("GET", "/v1/projects/{project_id}", "404") == 1
    assert count("GET", "unmatched", "404") == 1
    assert count("other", "/v1/projects", "405") == 1  # a method of the client's invention
    # No raw id ever becomes a label value.
    for _name, labels in after:
        for _label, label_value in labels:
            assert published.id not in label_value and assignment_id not in label_value

    # The histogram: cumulative buckets ending in +Inf == _count, a positive _sum.
    series = {"service": "tasks", "method": "POST", "route": approve_route, "status": "200"}
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == f"{DURATION}_bucket" and {k: v2 for k, v2 in labels if k != "le"} == series
    )
    assert len(buckets) == 14 and buckets[-1][0] == float("inf")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == value(after, f"{DURATION}_count", **series)
    assert value(after, f"{DURATION}_sum", **series) > 0

    # The database pools: every request above checked connections out of them.
    for pool in ("general", "hot"):
        assert (
            _delta(
                before,
                after,
                "marketplace_db_pool_acquire_seconds_count",
                service="tasks",
                pool=pool,
            )
            >= 1
        ), pool
    settings = stack.apps["tasks"].state.settings
    pool_max = value(after, "marketplace_db_pool_max_connections", service="tasks", pool="general")
    assert pool_max == settings.db_pool_size
    opened = value(
        after, "marketplace_db_pool_connections", service="tasks", pool="general", state="open"
    )
    in_use = value(
        after, "marketplace_db_pool_connections", service="tasks", pool="general", state="in_use"
    )
    assert 1 <= opened <= pool_max and 0 <= in_use <= opened

    # The payout reaches payments through the outbox: counted once, with its money.
    await wait_delivered(private_db, [f"pay:{assignment_id}"], stack.apps)
    paid = await scrape(stack.payments)
    assert _delta(before_payments, paid, "marketplace_payouts_total", source="reserved") == 1
    assert _delta(before_payments, paid, "marketplace_payout_cents_total", part="reward") == 10
    fee = _delta(before_payments, paid, "marketplace_payout_cents_total", part="fee")
    assert fee == published.slot_cents - 10
    batch = {"service": "payments", "method": "POST", "route": "/internal/payouts/batch"}
    assert _delta(before_payments, paid, f"{DURATION}_count", **batch, status="200") >= 1


async def test_metrics_is_not_part_of_the_api_documents(stack: Stack) -> None:
    for app in stack.apps.values():
        assert "/metrics" not in app.openapi()["paths"]
    resp = await stack.workers.get("/metrics")
    assert resp.status_code == 200
    assert "marketplace_db_pool_acquire_seconds_bucket" in resp.text


async def test_every_pool_of_the_database_is_watched_under_its_name(database_url: str) -> None:
    """The general and hot pools, and a pool held by a field (the read replica's), each get
    their own series; a pool nobody watches is ignored by the acquire hook."""

    @dataclass
    class Holder:
        pool: asyncpg.Pool

    @dataclass
    class ThreePools:
        pool: asyncpg.Pool
        hot_pool: asyncpg.Pool
        replica: Holder | None
        label: str = "not a pool"

    pools = [await make_pool(database_url, max_size=2, application_name="probe") for _ in "abc"]
    try:
        database = ThreePools(pools[0], pools[1], Holder(pools[2]))
        watched = watch_database(database, "probe")
        try:
            assert watched == pools
            for pool in pools:
                observe_acquire(pool, 0.002)
            refresh_pool_gauges()
            samples = parse_samples(render()[0].decode())
            for name in ("general", "hot", "replica"):
                labels = {"service": "probe", "pool": name}
                assert value(samples, "marketplace_db_pool_acquire_seconds_count", **labels) >= 1
                assert value(samples, "marketplace_db_pool_max_connections", **labels) == 2
        finally:
            unwatch(watched)
        observe_acquire(pools[0], 0.002)  # no longer watched: not counted, no error
        after = parse_samples(render()[0].decode())
        general = {"service": "probe", "pool": "general"}
        assert value(after, "marketplace_db_pool_acquire_seconds_count", **general) == value(
            samples, "marketplace_db_pool_acquire_seconds_count", **general
        )
    finally:
        for pool in pools:
            await pool.close()


# --------------------------------------------------------------------------- sampled gauges


async def test_outbox_backlog_and_timer_lag(stack: Stack, private_db: asyncpg.Pool) -> None:
    runner = stack.apps["tasks"].state.timer_runner
    items_before = await scrape(stack.tasks)
    await runner.stop()
    published = await published_project(
        stack.tasks, stack.workers, stack.payments, tasks=cat_tasks(2)
    )
    stack.mesh.stop("payments")  # payouts wait in the outbox
    try:
        first, second = await create_worker(stack.workers), await create_worker(stack.workers)
        paid = await accepted(stack.tasks, first, published.id)
        await submit(stack.tasks, first, paid["assignment_id"], {"label": "cat"})
        resp = await approve(stack.tasks, published.requester, paid["assignment_id"])
        assert resp.status_code == 200, resp.text
        late = await accepted(stack.tasks, second, published.id)
        await private_db.execute(
            "UPDATE assignments SET deadline = now() - interval '100 seconds' WHERE id = $1",
            late["assignment_id"],
        )
        grace = stack.apps["tasks"].state.settings.timers_grace_seconds

        def backlog_seen(s: Samples) -> bool:
            return (
                value(s, "marketplace_outbox_pending_messages") == 1
                and value(s, "marketplace_timer_lag_seconds", sweep="assignment_deadlines") > 0
            )

        samples = await until(stack.tasks, backlog_seen)
        assert 0 < value(samples, "marketplace_outbox_oldest_pending_seconds") < 30
        lag = value(samples, "marketplace_timer_lag_seconds", sweep="assignment_deadlines")
        assert 100 - grace <= lag < 100 - grace + 30
        for sweep in SWEEPS:  # every sweep has its gauge (none missing from the sample)
            key = ("marketplace_timer_lag_seconds", frozenset({"sweep": sweep}.items()))
            assert key in samples, f"no timer lag sampled for {sweep}"
            if sweep != "assignment_deadlines":
                assert value(samples, "marketplace_timer_lag_seconds", sweep=sweep) == 0, sweep
    finally:
        stack.mesh.start("payments")
        runner.start()

    await wait_delivered(private_db, [f"pay:{paid['assignment_id']}"], stack.apps)

    def caught_up(s: Samples) -> bool:
        return (
            value(s, "marketplace_outbox_pending_messages") == 0
            and value(s, "marketplace_outbox_oldest_pending_seconds") == 0
            and value(s, "marketplace_timer_lag_seconds", sweep="assignment_deadlines") == 0
        )

    after = await until(stack.tasks, caught_up)
    status = await private_db.fetchval(
        "SELECT status FROM assignments WHERE id = $1", late["assignment_id"]
    )
    assert status == "expired"
    assert (
        _delta(items_before, after, "marketplace_timer_items_total", sweep="assignment_deadlines")
        >= 1
    )
    assert (
        _delta(
            items_before,
            after,
            "marketplace_outbox_messages_total",
            kind="payout",
            outcome="retried",
        )
        >= 1
    )
    assert (
        _delta(
            items_before,
            after,
            "marketplace_outbox_messages_total",
            kind="payout",
            outcome="delivered",
        )
        >= 1
    )


async def test_ledger_check_gauge_turns_0_when_an_invariant_breaks(
    stack: Stack, private_db: asyncpg.Pool
) -> None:
    started = time.time()

    def checked_since(moment: float, ok: int) -> Callable[[Samples], bool]:
        return lambda s: (
            value(s, "marketplace_ledger_check_last_run_timestamp_seconds") > moment
            and value(s, "marketplace_ledger_check_ok") == ok
        )

    await until(stack.payments, checked_since(started, 1))
    requester = await create_requester(stack.workers)
    await deposit(stack.payments, requester, "5.00")
    account = f"requester:{requester.id}:available"
    # A cached balance that no longer matches its entries (as a bug in a posting would leave it).
    await private_db.execute(
        "UPDATE ledger_accounts SET balance_cents = balance_cents + 1 WHERE id = $1", account
    )
    try:
        broken_at = time.time()
        samples = await until(stack.payments, checked_since(broken_at, 0))
        assert value(samples, "marketplace_ledger_check_duration_seconds") > 0
    finally:
        await private_db.execute(
            "UPDATE ledger_accounts SET balance_cents = balance_cents - 1 WHERE id = $1", account
        )
    await until(stack.payments, checked_since(time.time(), 1))


async def test_ledger_check_skips_its_turn_while_another_replica_runs_it(
    stack: Stack, private_db: asyncpg.Pool
) -> None:
    async with private_db.acquire() as other_replica:
        # The stack's own periodic check may hold the lock at this instant: wait for our turn.
        for _ in range(200):
            if await other_replica.fetchval(
                ledger_repository.TRY_CHECK_LOCK_SQL, ledger_repository.LEDGER_CHECK_LOCK_KEY
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the ledger-check lock was never free")
        try:
            assert await run_ledger_check(stack.apps["payments"].state.database) is None
        finally:
            await other_replica.fetchval(
                ledger_repository.CHECK_UNLOCK_SQL, ledger_repository.LEDGER_CHECK_LOCK_KEY
            )
    result = await run_ledger_check(stack.apps["payments"].state.database)
    assert result is not None and result.ok


# --------------------------------------------------------------------------- processes


def test_processes_sharing_a_multiproc_dir_answer_for_all(
    database_url: str, tmp_path: Path
) -> None:
    """Two real workers-service processes share PROMETHEUS_MULTIPROC_DIR: a scrape of either
    counts both processes' requests; a process that stops takes its live gauges along."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    ports = [free_port(), free_port()]
    urls = {
        "tasks": "http://127.0.0.1:1",
        "workers": "http://127.0.0.1:1",
        "payments": "http://127.0.0.1:1",
    }
    env = {
        **os.environ,
        **service_env(database_url, urls),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "WORKERS_INTERNAL_TOKEN": INTERNAL_TOKEN,
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "services.workers.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            _wait_up(base)
        with httpx.Client(timeout=5) as client:
            for _ in range(3):
                assert client.get(bases[0] + "/readyz").status_code == 200
            for _ in range(5):
                assert client.get(bases[1] + "/readyz").status_code == 200
            both = [parse_samples(client.get(base + "/metrics").text) for base in bases]
            series = {"service": "workers", "method": "GET", "route": "/readyz", "status": "200"}
            for samples in both:
                assert value(samples, f"{DURATION}_count", **series) == 8
            pool = {"service": "workers", "pool": "general"}
            assert value(both[0], "marketplace_db_pool_max_connections", **pool) == 2 * 20
            procs[1].terminate()
            # uvicorn shuts down gracefully (the lifespan's exit runs), then re-raises SIGTERM.
            assert procs[1].wait(15) in (0, -15)
            alone = parse_samples(client.get(bases[0] + "/metrics").text)
        # The stopped process's requests stay counted; its pool no longer is.
        assert value(alone, f"{DURATION}_count", **series) == 8
        assert value(alone, "marketplace_db_pool_max_connections", **pool) == 20
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)


def _wait_up(base: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not start")


# --------------------------------------------------------------------------- cost


async def test_request_middleware_costs_microseconds() -> None:
    """The middleware around an ASGI app that answers at once, against the bare app, called
    directly (no HTTP, no client): what it adds to every request. The bound is loose (a busy
    2-core CI machine); the figure is printed (`-s`) for the report."""

    async def bare(scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    class Route:
        path = "/v1/things/{thing_id}"

    async def routed(scope: dict, receive: Callable, send: Callable) -> None:
        scope["route"] = Route
        await bare(scope, receive, send)

    measured = RequestMetricsMiddleware(routed, service="bench")

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    def scope() -> dict:
        return {"type": "http", "method": "GET", "path": "/v1/things/1", "headers": []}

    async def per_call(app: Callable, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(scope(), receive, send)
        return (time.perf_counter() - started) / n

    n = 20_000
    await per_call(measured, 1_000)  # warm: the labelled child is created once
    overheads = []
    for _ in range(3):
        overheads.append(await per_call(measured, n) - await per_call(routed, n))
    best = min(overheads)
    print(f"\nrequest metrics middleware: {best * 1e6:.2f} µs per request")
    assert best < 50e-6


# --------------------------------------------------------------------------- dashboard


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_PROMQL_MATCHERS = re.compile(r"\{[^}]*\}")
_PROMQL_RANGE = re.compile(r"\[[^\]]*\]")
_PROMQL_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    aggregations, keywords, label names (in matchers or groupings) or parts of strings."""
    text = _PROMQL_STRING.sub('""', expr)
    text = _PROMQL_MATCHERS.sub("", text)
    text = _PROMQL_GROUPING.sub("", text)
    text = _PROMQL_RANGE.sub("", text)
    names = set()
    for match in _PROMQL_NAME.finditer(text):
        name = match.group()
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # the exponent or suffix of a number
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if name.lower() not in _PROMQL_KEYWORDS:
            names.add(name)
    return names


def test_promql_metric_names() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.95, sum by (service, le) (rate(a_bucket{status=~"5..",x="b c"}[5m])))'
    ) == {"a_bucket"}
    assert promql_metric_names("time() - max(b_seconds) > 3600 and min(c) == 0") == {
        "b_seconds",
        "c",
    }
    assert promql_metric_names("sum without (pid) (d_total) / 100 + 1e3") == {"d_total"}
    assert promql_metric_names("topk(10, sum by (a, b) (rate(e[1m]) offset 5m))") == {"e"}


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "docker/grafana/dashboards/marketplace.json").read_text())
    panels = [
        panel
        for top in dashboard["panels"]
        for panel in ([top] if top["type"] != "row" else []) + top.get("panels", [])
    ]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def _alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((ROOT / "docker/prometheus/alerts.yml").read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


async def test_every_dashboard_and_alert_query_names_exported_metrics(
    stack: Stack, private_db: asyncpg.Pool
) -> None:
    """Scrape the three apps after an approval went through, and check each query of the
    Grafana dashboard and of the Prometheus alerts against what they export (sample names:
    a histogram exports _bucket, _count and _sum, a counter _total)."""
    published = await published_project(
        stack.tasks, stack.workers, stack.payments, tasks=cat_tasks(1)
    )
    worker = await create_worker(stack.workers)
    work = await accepted(stack.tasks, worker, published.id)
    await submit(stack.tasks, worker, work["assignment_id"], {"label": "cat"})
    await approve(stack.tasks, published.requester, work["assignment_id"])
    await wait_delivered(private_db, [f"pay:{work['assignment_id']}"], stack.apps)
    exported: set[str] = set()
    for client in stack.clients.values():
        exported |= {name for name, _labels in await scrape(client)}

    queries = _dashboard_queries()
    assert {"Payouts per second", "Timer lag per sweep", "Requests per second by service"} <= {
        title for title, _ in queries
    }
    unknown = []
    for title, expr in queries + _alert_queries():
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        unknown += [f"{title}: {name}" for name in sorted(names - exported)]
    assert not unknown, "queries name metrics nobody exports:\n" + "\n".join(unknown)


async def test_an_unhandled_exception_is_counted_and_timed_as_a_500() -> None:
    class Route:
        path = "/v1/broken/{thing_id}"

    async def broken(scope: dict, receive: Callable, send: Callable) -> None:
        scope["route"] = Route
        raise RuntimeError("a bug")

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    before = parse_samples(render()[0].decode())
    with pytest.raises(RuntimeError):
        await RequestMetricsMiddleware(broken, service="probe")(
            {"type": "http", "method": "POST", "path": "/v1/broken/1", "headers": []},
            receive,
            send,
        )
    after = parse_samples(render()[0].decode())
    assert _delta(before, after, "marketplace_http_exceptions_total", service="probe") == 1
    series = {"service": "probe", "method": "POST", "route": "/v1/broken/{thing_id}"}
    assert _delta(before, after, f"{DURATION}_count", **series, status="500") == 1
