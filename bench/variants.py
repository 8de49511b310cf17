"""Measured proposals: the services with one change applied at start-up, without editing them.

The bench owns no service code; when it finds a cost on a hot path it proves the fix by running
the unchanged services with the change patched in at process start (`--variant NAME`), so
bench/RESULTS.md can put numbers next to each proposed change. A variant is an experiment, never
a deployment: the real change belongs in shared/ or services/.

    uvicorn --factory bench.variants:create_tasks_app   (env BENCH_VARIANTS=no_access_log,...)

Variants:
- no_access_log: no JSON access-log line per request (what logging costs on the hot paths).
- local_ratelimit: the per-account rate limit counted in the process's memory (the algorithm of
  shared.ratelimit.RateLimiter) instead of one Postgres statement per authenticated request
  (SharedRateLimiter): what sharing the budget across replicas costs per request.
- no_request_metrics: without the Prometheus request middleware (shared.metrics): what the
  per-request metrics cost.

Earlier variants, measured in RESULTS.md and since applied to the code (so removed here):
`no_preping` (no pool pre-ping), `threadless_ratelimit` (shared/ratelimit.py without threads),
`raw_auth` (the key lookup on the raw connection).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from fastapi import FastAPI


def _no_access_log() -> None:
    logging.getLogger("access").disabled = True


class _InMemoryAccountLimit:
    """SharedRateLimiter's interface (an awaitable check) over the in-memory limiter."""

    def __init__(self, rate: str) -> None:
        from shared.ratelimit import RateLimiter

        self.limiter = RateLimiter(rate)

    async def check(self, key: str, db: object = None) -> None:  # db: shared.auth passes it
        self.limiter.check(key)


def _local_ratelimit(app: FastAPI) -> None:
    app.state.account_rate_limiter = _InMemoryAccountLimit(app.state.settings.account_rate_limit)


def _no_request_metrics(app: FastAPI) -> None:
    # The middleware stack is built on the first request, from this list.
    kept = [m for m in app.user_middleware if m.cls.__name__ != "RequestMetricsMiddleware"]
    if len(kept) == len(app.user_middleware):
        raise RuntimeError("no RequestMetricsMiddleware to remove")
    app.user_middleware[:] = kept


_INSTALLERS: dict[str, Callable[[FastAPI], None]] = {
    "no_access_log": lambda _app: _no_access_log(),
    "local_ratelimit": _local_ratelimit,
    "no_request_metrics": _no_request_metrics,
}
VARIANTS = tuple(_INSTALLERS)


def _enabled() -> set[str]:
    names = {v.strip() for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v.strip()}
    unknown = names - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown bench variants: {sorted(unknown)}; known: {VARIANTS}")
    return names


def _patched(create: Callable[[], FastAPI]) -> FastAPI:
    enabled = _enabled()
    app = create()  # configures logging: the installers run after it
    for name in sorted(enabled):
        _INSTALLERS[name](app)
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
