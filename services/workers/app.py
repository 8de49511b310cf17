"""Workers service application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.workers.accounts.routes import router as accounts_router
from services.workers.attempts.routes import router as attempts_router
from services.workers.blocks.routes import router as blocks_router
from services.workers.grants.routes import router as grants_router
from services.workers.internal.routes import router as internal_router
from services.workers.levels.loop import levels_lifespan
from services.workers.levels.routes import router as levels_router
from services.workers.messages.internal_routes import router as messages_internal_router
from services.workers.messages.routes import router as messages_router
from services.workers.mturk_credentials.routes import router as mturk_credentials_router
from services.workers.profiles.routes import router as profiles_router
from services.workers.qualification_types.internal_routes import (
    router as qualification_types_internal_router,
)
from services.workers.qualification_types.routes import router as qualification_types_router
from services.workers.settings import Settings
from services.workers.stats.compaction import stats_compaction_lifespan
from shared.app_factory import build_app


@asynccontextmanager
async def background_jobs(app: FastAPI) -> AsyncIterator[None]:
    """The stats compaction and the levels loop (which the compaction feeds)."""
    async with stats_compaction_lifespan(app), levels_lifespan(app):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from WORKERS_* env
    return build_app(
        service="workers",
        title="Marketplace workers service",
        description="Accounts, API keys, worker profiles, qualifications, tests and blocks.",
        settings=settings,
        routers=[
            accounts_router,
            mturk_credentials_router,
            # grants before profiles: /v1/workers/me/qualifications is more specific than
            # /v1/workers/{worker_id} (different depths, but keep the intent visible)
            grants_router,
            levels_router,  # /v1/workers/me/level: before /v1/workers/{worker_id}, like grants
            messages_router,
            profiles_router,
            qualification_types_router,
            attempts_router,
            blocks_router,
            internal_router,
            qualification_types_internal_router,
            messages_internal_router,
        ],
        lifespan=background_jobs,
    )
