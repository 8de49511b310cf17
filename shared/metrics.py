"""Prometheus metrics: what every service exports on `GET /metrics` (docs/architecture.md,
"What is measured").

Two modes, chosen by the process's environment before `prometheus_client` is first imported:

- one process per service (the default): the metrics live in this process's memory and
  `/metrics` answers from them, with the process collectors (CPU, memory, open files, GC);
- several processes of one service on one host sharing `PROMETHEUS_MULTIPROC_DIR` (uvicorn
  `--workers N`, or replicas started side by side): every process writes its values to
  memory-mapped files in that directory and `/metrics` of ANY of them answers for all of them
  (counters and histograms summed, gauges by their `multiprocess_mode`). Scrape one of them,
  not each (each would report the sum). The directory must be emptied before the processes
  start (stale files of a previous run would be summed in); a process that stops cleanly
  removes its live gauges (`mark_process_dead`), one that is SIGKILLed leaves them until the
  directory is emptied.

Everything recorded on a request path is a dictionary lookup and a few float operations on
an already-labelled child (no label resolution per request beyond one `labels()` call, no
lock in the single-process mode beyond the value's own): see `RequestMetricsMiddleware`.

`/metrics` is for the operator's Prometheus on the private network: it is not in the OpenAPI
documents and the public gateway does not route it (docker/nginx.conf).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latencies: 1 ms (a cached read) to 10 s (a large upload, a results export).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waiting for a pooled connection: normally nothing (a free connection, ~µs), a connect when the
# pool grows (~ms), seconds only when the pool is exhausted (the acquire times out at 30 s).
_ACQUIRE_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

UNMATCHED_ROUTE = "unmatched"
"""The `route` label of requests no route matched (404s for arbitrary paths, which must not
each become a series)."""

HTTP_REQUEST_DURATION = Histogram(
    "marketplace_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, per route template and status "
    "(the _count is the number of requests).",
    ["service", "method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_EXCEPTIONS = Counter(
    "marketplace_http_exceptions_total",
    "Requests that ended in an unhandled exception (answered 500 by the server): bugs, as "
    "opposed to the expected 5xx answers such as 503 dependency_unavailable (the log line "
    "names the route and carries the traceback).",
    ["service"],
)
DB_POOL_ACQUIRE = Histogram(
    "marketplace_db_pool_acquire_seconds",
    "Time spent waiting for a connection from an asyncpg pool.",
    ["service", "pool"],
    buckets=_ACQUIRE_BUCKETS,
)
DB_POOL_CONNECTIONS = Gauge(
    "marketplace_db_pool_connections",
    "Connections of an asyncpg pool: open (in_use + idle) and in_use (checked out).",
    ["service", "pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "marketplace_db_pool_max_connections",
    "The size limit of an asyncpg pool (summed over the processes sharing a host).",
    ["service", "pool"],
    multiprocess_mode="livesum",
)
OUTBOX_PENDING = Gauge(
    "marketplace_outbox_pending_messages",
    "Payout and release messages the tasks service still owes payments (not delivered, not "
    "parked).",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_PENDING = Gauge(
    "marketplace_outbox_oldest_pending_seconds",
    "Age of the oldest pending outbox message (0 when none): how late the slowest payout is.",
    multiprocess_mode="mostrecent",
)
OUTBOX_OUTCOMES = Counter(
    "marketplace_outbox_messages_total",
    "Outbox messages handled by this process's deliverer, by outcome (delivered, retried, parked).",
    ["kind", "outcome"],
)
TIMER_LAG = Gauge(
    "marketplace_timer_lag_seconds",
    "Per sweep, how long the oldest item it should have acted on has been waiting past its due "
    "time plus the grace (0 when nothing is overdue).",
    ["sweep"],
    multiprocess_mode="mostrecent",
)
COALESCED_BATCHES = Counter(
    "marketplace_coalesced_batches_total",
    "Statements run for coalesced events (shared/coalescing.py), per kind of event (heartbeat): "
    "events_total / batches_total is how many events shared each statement.",
    ["what"],
)
COALESCED_EVENTS = Counter(
    "marketplace_coalesced_events_total",
    "Events applied by coalesced statements (shared/coalescing.py), per kind of event.",
    ["what"],
)
TIMER_ITEMS = Counter(
    "marketplace_timer_items_total",
    "Items the timer sweeps acted on (expired, auto-approved, pruned), per sweep.",
    ["sweep"],
)
PAYOUTS = Counter(
    "marketplace_payouts_total",
    "Payouts posted to the ledger, by the money they were drawn from (reserved: an approval; "
    "available: an override).",
    ["source"],
)
PAYOUT_CENTS = Counter(
    "marketplace_payout_cents_total",
    "Cents moved by posted payouts: reward (to workers) and fee (to the platform).",
    ["part"],
)
LEDGER_CHECK_OK = Gauge(
    "marketplace_ledger_check_ok",
    "1 when the last ledger check found every invariant holding, 0 when it did not.",
    multiprocess_mode="mostrecent",
)
LEDGER_CHECK_LAST_RUN = Gauge(
    "marketplace_ledger_check_last_run_timestamp_seconds",
    "Unix time at which the last ledger check finished.",
    multiprocess_mode="max",
)
LEDGER_CHECK_DURATION = Gauge(
    "marketplace_ledger_check_duration_seconds",
    "How long the last ledger check took.",
    multiprocess_mode="mostrecent",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The exposition text for this process, or, in multi-process mode, for every process
    sharing the directory."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --------------------------------------------------------------------------- requests


class RequestMetricsMiddleware:
    """Pure ASGI: one clock read at each end, the status from the response's start, and the
    route template that the router left in the scope (`scope["route"]`), so
    `/v1/projects/{project_id}` is one series whatever the ids."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._children: dict[tuple[str, str, int], Any] = {}
        self._exceptions = HTTP_EXCEPTIONS.labels(service)  # exported (as 0) from the start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            self._exceptions.inc()
            raise
        finally:
            route = _route_of(scope)
            key = (_method_of(scope), route, status)
            child = self._children.get(key)
            if child is None:
                child = HTTP_REQUEST_DURATION.labels(self.service, key[0], route, str(status))
                self._children[key] = child
            child.observe(time.perf_counter() - start)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_of(scope: Scope) -> str:
    """Any other method is one series ("other"): a client must not create series at will."""
    method = scope["method"]
    return method if method in _METHODS else "other"


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


async def metrics_endpoint(request: Request) -> Response:
    refresh_pool_gauges()
    body, content_type = render()
    return Response(body, media_type=content_type)


# --------------------------------------------------------------------------- database pools


@dataclass(frozen=True, slots=True)
class _WatchedPool:
    pool: asyncpg.Pool
    service: str
    name: str
    acquire: Any  # the labelled histogram child


_watched: dict[int, _WatchedPool] = {}


def _pool_name(field_name: str) -> str:
    name = field_name.removesuffix("pool").strip("_")
    return name or "general"


def watch_database(database: Any, service: str) -> list[asyncpg.Pool]:
    """Measure every asyncpg pool of `database` (shared.database.Database: each field that is a
    pool, or holds one as `.pool`, named after the field: `pool` is "general", `hot_pool` "hot",
    `replica` "replica"). Returns the pools watched."""
    pools = []
    for field in fields(database):
        pool = getattr(database, field.name)
        if not isinstance(pool, asyncpg.Pool):  # a holder of one (the read replica's)
            pool = getattr(pool, "pool", None)
        if isinstance(pool, asyncpg.Pool):
            name = _pool_name(field.name)
            _watched[id(pool)] = _WatchedPool(
                pool, service, name, DB_POOL_ACQUIRE.labels(service, name)
            )
            pools.append(pool)
    return pools


def unwatch(pools: list[asyncpg.Pool]) -> None:
    for pool in pools:
        _watched.pop(id(pool), None)


def observe_acquire(pool: asyncpg.Pool, seconds: float) -> None:
    """Called by shared.database on every checkout (a pool nobody watches is ignored)."""
    watched = _watched.get(id(pool))
    if watched is not None:
        watched.acquire.observe(seconds)


def refresh_pool_gauges() -> None:
    for watched in list(_watched.values()):
        pool = watched.pool
        size = pool.get_size()
        DB_POOL_CONNECTIONS.labels(watched.service, watched.name, "open").set(size)
        DB_POOL_CONNECTIONS.labels(watched.service, watched.name, "in_use").set(
            size - pool.get_idle_size()
        )
        DB_POOL_MAX.labels(watched.service, watched.name).set(pool.get_max_size())


# --------------------------------------------------------------------------- periodic samples


async def run_periodically(
    name: str, interval_seconds: float, sample: Callable[[], Awaitable[None]]
) -> None:
    """`sample()` now and then every `interval_seconds` until cancelled; a failure (the database
    away) is logged once per streak and tried again at the next tick."""
    failing = False
    while True:
        try:
            await sample()
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                log.warning("metrics sample %s failed: %s: %s", name, type(exc).__name__, exc)
            failing = True
        await asyncio.sleep(interval_seconds)


@asynccontextmanager
async def periodic(
    name: str, interval_seconds: float, sample: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Run `sample` periodically for the block's duration (not at all for an interval of 0)."""
    if interval_seconds <= 0:
        yield
        return
    task = asyncio.create_task(
        run_periodically(name, interval_seconds, sample), name=f"metrics-{name}"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def metrics_lifespan(
    database: Any, service: str, *, interval_seconds: float
) -> AsyncIterator[None]:
    """Watch the process's pools and keep their gauges fresh (in multi-process mode the process
    answering a scrape refreshes only its own, so each refreshes itself every interval)."""
    pools = watch_database(database, service)

    async def sample_pools() -> None:
        refresh_pool_gauges()

    try:
        async with periodic(f"{service}-pools", interval_seconds, sample_pools):
            yield
    finally:
        unwatch(pools)
        if multiprocess_mode():
            # Removes this process's live gauges (pool sizes) from the shared directory.
            multiprocess.mark_process_dead(os.getpid())
