"""Tasks service application factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.tasks.assignments.routes import router as assignments_router
from services.tasks.discovery.routes import router as discovery_router
from services.tasks.gold.routes import router as gold_router
from services.tasks.outbox.routes import router as outbox_router
from services.tasks.outbox.service import outbox_lifespan
from services.tasks.projects.routes import router as projects_router
from services.tasks.results.routes import router as results_router
from services.tasks.review.routes import router as review_router
from services.tasks.settings import Settings
from services.tasks.tasks.routes import router as tasks_router
from shared.app_factory import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from TASKS_* env
    return build_app(
        service="tasks",
        title="Marketplace tasks service",
        description="Projects, tasks, assignments, review and results.",
        settings=settings,
        routers=[
            projects_router,
            tasks_router,
            results_router,
            discovery_router,
            assignments_router,
            review_router,
            gold_router,
            outbox_router,
        ],
        # Background work of the tasks service: the outbox deliverer (payouts, releases).
        lifespan=outbox_lifespan,
    )
