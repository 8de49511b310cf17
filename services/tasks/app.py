"""Tasks service application factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.tasks.settings import Settings
from shared.app_factory import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from TASKS_* env
    return build_app(
        service="tasks",
        title="Marketplace tasks service",
        description="Projects, tasks, assignments, review and results.",
        settings=settings,
        routers=[],
    )
