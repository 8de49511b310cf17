"""Tasks service application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.tasks.appeals.routes import router as appeals_router
from services.tasks.assignments.routes import router as assignments_router
from services.tasks.clock import utcnow
from services.tasks.discovery.routes import router as discovery_router
from services.tasks.gold.routes import router as gold_router
from services.tasks.interop.routes import router as interop_router
from services.tasks.lifecycle.accepted import AcceptedAssignments
from services.tasks.metrics import tasks_metrics_lifespan
from services.tasks.mturk.routes import router as mturk_router
from services.tasks.outbox.routes import router as outbox_router
from services.tasks.outbox.service import outbox_lifespan
from services.tasks.pay_floor.routes import router as pay_floor_router
from services.tasks.projects.routes import router as projects_router
from services.tasks.results.jobs import aggregation_lifespan
from services.tasks.results.routes import router as results_router
from services.tasks.review.routes import router as review_router
from services.tasks.sessions.routes import router as sessions_router
from services.tasks.sessions.service import session_events
from services.tasks.settings import Settings
from services.tasks.task_changes.routes import router as task_changes_router
from services.tasks.tasks.routes import router as tasks_router
from services.tasks.timers.routes import router as timers_router
from services.tasks.timers.service import timers_lifespan
from services.tasks.timesheets.routes import router as timesheets_router
from services.tasks.training.routes import router as training_router
from shared.app_factory import build_app


@asynccontextmanager
async def background_work(app: FastAPI) -> AsyncIterator[None]:
    """The tasks service's loops: the outbox deliverer (payouts, releases) and the timers.

    Timers are entered inside the outbox so that on shutdown (after uvicorn drained the
    in-flight requests) they stop first and the deliverer, which their batches wake, stops last.
    """
    async with (
        outbox_lifespan(app),
        timers_lifespan(app),
        aggregation_lifespan(app),
        tasks_metrics_lifespan(app),
    ):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from TASKS_* env
    app = build_app(
        service="tasks",
        title="Marketplace tasks service",
        description="Projects, tasks, assignments, review and results.",
        settings=settings,
        # Matched in this order, route by route: the busiest requests (accept, submit,
        # return, approve, reject) first. No path of theirs overlaps another router's.
        routers=[
            assignments_router,
            # Heartbeats come every few seconds from every open work session: matched early
            # (each router ahead costs every request a walk over its routes).
            sessions_router,
            review_router,
            projects_router,
            pay_floor_router,
            tasks_router,
            task_changes_router,
            results_router,
            interop_router,
            discovery_router,
            timesheets_router,
            appeals_router,
            training_router,
            gold_router,
            outbox_router,
            timers_router,
            # The MTurk door (AWS JSON on POST /mturk): its own protocol, not in OpenAPI.
            mturk_router,
        ],
        lifespan=background_work,
    )
    app.state.accepted_assignments = AcceptedAssignments()
    app.state.session_events = session_events(
        lambda: app.state.database, max_batch=settings.heartbeat_max_batch
    )
    app.state.clock = utcnow  # hourly work's "now"; tests may set another (services/tasks/clock)
    return app
