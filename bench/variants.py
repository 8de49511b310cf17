"""Measured proposals: the services with one change applied at start-up, without editing them.

The bench owns no service code; when it finds a cost on a hot path it proves the fix by running
the unchanged services with the change patched in at process start (`--variant NAME`), so
bench/RESULTS.md can put numbers next to each proposed change. A variant is an experiment, never
a deployment: the lead applies the real change in shared/ or services/.

    uvicorn --factory bench.variants:create_tasks_app   (env BENCH_VARIANTS=no_preping,...)

Variants:
- no_preping: `pool_pre_ping=False` on the engine. SQLAlchemy's asyncpg ping is BEGIN; ";";
  ROLLBACK: three round trips before every request's first statement.
- threadless_ratelimit: a per-process sliding-window counter without the `limits` memory
  storage, which starts a new expiry thread (threading.Timer) on the request path whenever the
  last one has finished, i.e. on most requests under load.
- raw_auth: the API-key lookup on the raw asyncpg connection (the hot paths' rule) instead of
  through SQLAlchemy Core (since applied to shared/auth.py; the variant is then a no-op).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

# The names raw_auth's code uses, bound here for reading and linting; at run time the code runs
# with shared.auth's globals, where _install_raw_auth puts the three _bench ones.
from shared.auth import _LOOKUP, _TOUCH, KEY_PREFIX, Caller, hash_api_key
from shared.db import driver_connection as _bench_driver_connection
from shared.errors import Unauthorized

_BENCH_LOOKUP = str(_LOOKUP).replace(":h", "$1")
_BENCH_TOUCH = str(_TOUCH).replace(":id", "$1")

VARIANTS = ("no_preping", "threadless_ratelimit", "raw_auth")


def _enabled() -> set[str]:
    names = {v.strip() for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v.strip()}
    unknown = names - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown bench variants: {sorted(unknown)}; known: {VARIANTS}")
    return names


class ThreadlessRateLimiter:
    """The same sliding-window-counter rule as `limits` (two fixed windows, the previous one
    weighted by how much of it still overlaps the sliding window), in two dicts, no threads.
    Stale keys are dropped in bulk when the table grows, amortised O(1) per hit."""

    def __init__(self, rate: str) -> None:
        from limits import parse

        item = parse(rate)
        self.limit = item.amount
        self.window = float(item.get_expiry())
        self.item = item
        self._counts: dict[str, tuple[int, int, int]] = {}  # key -> (window no, prev, current)

    def check(self, key: str) -> None:
        from shared.errors import RateLimited

        now = time.time()
        window = int(now // self.window)
        number, previous, current = self._counts.get(key, (window, 0, 0))
        if number != window:
            previous = current if number == window - 1 else 0
            current = 0
        weight = 1.0 - (now % self.window) / self.window
        if previous * weight + current + 1 > self.limit:
            retry_after = max(1, math.ceil(self.window - now % self.window))
            raise RateLimited(
                f"Too many requests: the limit is {self.item}. Retry after {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
                extra={"retry_after": retry_after},
            )
        self._counts[key] = (window, previous, current + 1)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if v[0] >= window - 1}


async def _raw_get_caller_code(request, session, credentials):  # type: ignore[no-untyped-def]
    """Body swapped into shared.auth.get_caller (same parameters, resolved in that module's
    globals): the lookup on the raw connection. Swapping the code object rather than using
    `app.dependency_overrides` matters: FastAPI re-analyses an overriding dependency's signature
    on every request, which costs more than the change saves."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <api_key>'.")
    key = credentials.credentials
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise Unauthorized("Unknown or revoked API key.")
    conn = await _bench_driver_connection(session)
    row = await conn.fetchrow(_BENCH_LOOKUP, hash_api_key(key))
    if row is None:
        raise Unauthorized("Unknown or revoked API key.")
    request.app.state.key_rate_limiter.check(row["id"])
    if row["stale"]:
        await conn.execute(_BENCH_TOUCH, row["id"])
    return Caller(account_id=row["account_id"], kind=row["kind"], key_id=row["id"])


def _install_raw_auth() -> None:
    import shared.auth as auth

    auth._bench_driver_connection = _bench_driver_connection  # type: ignore[attr-defined]
    auth._BENCH_LOOKUP = _BENCH_LOOKUP  # type: ignore[attr-defined]
    auth._BENCH_TOUCH = _BENCH_TOUCH  # type: ignore[attr-defined]
    auth.get_caller.__code__ = _raw_get_caller_code.__code__


def _patched(create: Callable[[], FastAPI]) -> FastAPI:
    enabled = _enabled()
    import shared.app_factory as app_factory

    if "no_preping" in enabled:
        from shared import db

        def make_engine(url: str, **kw: Any):  # type: ignore[no-untyped-def]
            engine = db.make_engine(url, **kw)
            engine.pool._pre_ping = False  # type: ignore[attr-defined]
            return engine

        app_factory.make_engine = make_engine  # type: ignore[assignment]
    if "threadless_ratelimit" in enabled:
        app_factory.RateLimiter = ThreadlessRateLimiter  # type: ignore[assignment,misc]
    if "raw_auth" in enabled:
        _install_raw_auth()
    app = create()
    app.state.bench_variants = sorted(enabled)
    return app


def create_tasks_app() -> FastAPI:
    from services.tasks.app import create_app

    return _patched(create_app)


def create_workers_app() -> FastAPI:
    from services.workers.app import create_app

    return _patched(create_app)


def create_payments_app() -> FastAPI:
    from services.payments.app import create_app

    return _patched(create_app)
