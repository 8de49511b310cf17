"""The parts every service's create_app() shares: errors, middleware, health, lifespan resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import database_ready, make_engine, make_sessionmaker
from shared.errors import (
    DependencyUnavailable,
    PayloadTooLarge,
    install_error_handlers,
    problem_response,
)
from shared.http import InternalClient, make_http_client
from shared.logging import RequestContextMiddleware, configure_logging
from shared.ratelimit import RateLimiter
from shared.settings import ServiceSettings


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, checked on Content-Length and while streaming,
    so a huge body is refused without being read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The database is reachable",
        responses={503: {"description": "database unreachable"}},
    )
    async def readyz(request: Request) -> Any:
        if await database_ready(request.app.state.engine):
            return {"status": "ready"}
        return problem_response(
            DependencyUnavailable("The database is unreachable.", retry_after=2)
        )

    return router


@asynccontextmanager
async def base_lifespan(
    app: FastAPI, settings: ServiceSettings, service: str
) -> AsyncIterator[None]:
    """Open the engine and the one shared httpx client; close them on shutdown."""
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        application_name=service,
    )
    http = make_http_client(settings.http_timeout_seconds)
    token = settings.internal_token.get_secret_value()
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.http = http
    app.state.peers = {
        "tasks": InternalClient(http, settings.tasks_url, token, "tasks"),
        "workers": InternalClient(http, settings.workers_url, token, "workers"),
        "payments": InternalClient(http, settings.payments_url, token, "payments"),
    }
    try:
        yield
    finally:
        await http.aclose()
        await engine.dispose()


def build_app(
    *,
    service: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    configure_logging(service, settings.log_level)

    @asynccontextmanager
    async def lifespan_all(app: FastAPI) -> AsyncIterator[None]:
        async with base_lifespan(app, settings, service):
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan_all,
    )
    app.state.settings = settings
    app.state.key_rate_limiter = RateLimiter(settings.rate_limit_per_key)
    app.state.signup_rate_limiter = RateLimiter(settings.rate_limit_signup)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
