"""Measured proposals: the services with one change applied at start-up, without editing them.

The bench owns no service code; when it finds a cost on a hot path it proves the fix by running
the unchanged services with the change patched in at process start (`--variant NAME`), so
bench/RESULTS.md can put numbers next to each proposed change. A variant is an experiment, never
a deployment: the real change belongs in shared/ or services/.

    uvicorn --factory bench.variants:create_tasks_app   (env BENCH_VARIANTS=no_access_log,...)

Variants:
- no_access_log: no JSON access-log line per request (what logging costs on the hot paths).

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


_INSTALLERS: dict[str, Callable[[], None]] = {"no_access_log": _no_access_log}
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
        _INSTALLERS[name]()
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
