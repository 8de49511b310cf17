"""Workers service application factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.workers.accounts.routes import router as accounts_router
from services.workers.internal.routes import router as internal_router
from services.workers.settings import Settings
from shared.app_factory import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from WORKERS_* env
    return build_app(
        service="workers",
        title="Marketplace workers service",
        description="Accounts, API keys, worker profiles, qualifications, tests and blocks.",
        settings=settings,
        routers=[accounts_router, internal_router],
    )
