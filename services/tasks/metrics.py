"""The tasks service's sampled gauges: what the outbox still owes payments and how far behind
each timer sweep is (shared/metrics.py defines them; docs/architecture.md says why).

Sampled every `TASKS_METRICS_SAMPLE_SECONDS` by every replica (two index-probing statements on
one connection); the values describe the whole database, so replicas report the same figures
and Prometheus may take any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.tasks.outbox import repository as outbox_repository
from services.tasks.timers import repository as timers_repository
from services.tasks.timers.service import SWEEPS
from shared.database import Database
from shared.metrics import OUTBOX_OLDEST_PENDING, OUTBOX_PENDING, TIMER_LAG, periodic


async def sample_backlogs(
    database: Database,
    *,
    grace_seconds: float,
    retention_seconds: float,
    scorecard_max_age_seconds: float,
) -> None:
    async with database.autocommit() as db:  # the primary: a replica may lag behind
        owed = await outbox_repository.pending(db)
        lag = await timers_repository.sweep_lag(
            db,
            grace_seconds=grace_seconds,
            retention_seconds=retention_seconds,
            scorecard_max_age_seconds=scorecard_max_age_seconds,
        )
    OUTBOX_PENDING.set(owed.pending)
    OUTBOX_OLDEST_PENDING.set(owed.oldest_pending_seconds)
    for sweep in SWEEPS:
        TIMER_LAG.labels(sweep).set(getattr(lag, sweep))


@asynccontextmanager
async def tasks_metrics_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    database: Database = app.state.database

    async def sample() -> None:
        await sample_backlogs(
            database,
            grace_seconds=settings.timers_grace_seconds,
            retention_seconds=settings.outbox_retention_seconds,
            scorecard_max_age_seconds=settings.discovery_scorecard_max_age_seconds,
        )

    async with periodic("tasks-backlogs", settings.metrics_sample_seconds, sample):
        yield
