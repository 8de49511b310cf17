"""Engine, the per-request session, and raw asyncpg access for hot paths.

One transaction per request: `get_session` opens it, commits when the route returns and rolls
back when anything raises. Its scope is "function", so the commit happens *before* the response
is sent: a client that sees 201 can rely on the row being visible to every service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def asyncpg_url(url: str) -> str:
    """Accept plain postgresql:// URLs (what humans and compose use) and pick the driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("not a PostgreSQL URL")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, **kw: Any) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,  # survive a Postgres restart without restarting the service
        pool_recycle=1800,
        hide_parameters=True,  # query parameters (key hashes, ...) never reach error texts/logs
        connect_args={"server_settings": {"application_name": kw.pop("application_name", "svc")}},
        **kw,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under `session`, inside the session's transaction.

    Hot paths (accept, submit, approve, ledger writes) run their few statements straight on
    asyncpg: FACTS.md measured the SQLAlchemy layer at ~40% of a primary-key read. SQLAlchemy
    opens the asyncpg transaction lazily on the first statement, so we open it here if needed;
    otherwise raw statements would run in autocommit and escape the request's rollback
    (tests/shared/test_db.py guards this against SQLAlchemy upgrades).
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    adapted = raw.dbapi_connection
    if getattr(adapted, "_transaction", None) is None:
        await adapted._start_transaction()  # type: ignore[union-attr]
    return adapted.driver_connection  # type: ignore[union-attr,return-value]


async def database_ready(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
