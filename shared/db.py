"""Engine, the per-request session, and raw asyncpg access for hot paths.

One transaction per request: `get_session` opens it, commits when the route returns and rolls
back when anything raises. Its scope is "function", so the commit happens *before* the response
is sent: a client that sees 201 can rely on the row being visible to every service.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.errors import DependencyUnavailable


def asyncpg_url(url: str) -> str:
    """Accept plain postgresql:// URLs (what humans and compose use) and pick the driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("not a PostgreSQL URL")


def make_engine(url: str, *, pool_size: int = 20, max_overflow: int = 0, **kw: Any) -> AsyncEngine:
    """The service's engine.

    Pool: as many connections as a replica serves requests at once, and no overflow. Overflow
    connections are opened and closed as load comes and goes: a Postgres fork, asyncpg's
    handshake and SQLAlchemy's type introspection each time (the bench counted 125 new sessions
    in 10 s at 32-128 clients, and +22% accept→submit throughput without them). A request past
    the pool's size waits for a connection (`pool_timeout`) instead.

    No pre-ping: SQLAlchemy's asyncpg ping is `BEGIN; ; ROLLBACK`, three round trips before
    every request (the bench: +33% without it). `_discard_closed_connection` gives the same
    protection for free: asyncpg notices a server-side close (Postgres restarted, the backend
    was terminated) as soon as it happens, so a checkout looks at that flag and replaces the
    connection, and the pool's other connections from before the restart with it.
    """
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        hide_parameters=True,  # query parameters (key hashes, ...) never reach error texts/logs
        connect_args={"server_settings": {"application_name": kw.pop("application_name", "svc")}},
        **kw,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def _discard_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    if dbapi_connection.driver_connection.is_closed():
        # The pool drops every connection older than this moment and reconnects this one.
        raise InvalidatePoolError("connection closed by the server")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        # The transaction starts here, on a connection known to work (see driver_connection),
        # so no route meets a connection that died while it sat in the pool.
        await driver_connection(session)
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
    asyncpg: on this project's 2-core machines the SQLAlchemy layer cost ~40% of a primary-key
    read (an asyncpg-direct vs Core A/B). SQLAlchemy
    opens the asyncpg transaction lazily on the first statement, so we open it here if needed;
    otherwise raw statements would run in autocommit and escape the request's rollback
    (tests/shared/test_foundation.py guards this against SQLAlchemy upgrades).
    """
    for attempt in range(_BEGIN_ATTEMPTS):
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        adapted = raw.dbapi_connection
        if getattr(adapted, "_transaction", None) is not None:
            break
        try:
            await adapted._start_transaction()  # type: ignore[union-attr]
            break
        except Exception:
            # BEGIN, the first statement of the transaction, fails only on a connection that
            # can no longer be used: Postgres shutting down sends its "terminating connection"
            # error to every idle connection a moment before it closes them, and a checkout in
            # that moment sees a connection that is neither open nor closed. Nothing has run in
            # this transaction yet, so a fresh connection is safe; with Postgres down, the
            # connect fails and the request answers 503.
            if attempt == _BEGIN_ATTEMPTS - 1:
                raise
            await session.invalidate()
    return adapted.driver_connection  # type: ignore[union-attr,return-value]


_BEGIN_ATTEMPTS = 3


async def database_ready(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- the driver pool
#
# The queue's hot paths (accept, submit, return) take most of the site's requests and run a
# few raw statements each. They borrow from a plain asyncpg pool instead of going through a
# SQLAlchemy session, whose checkout, greenlet hops and commit bookkeeping cost more than the
# statements themselves (bench/RESULTS.md), and they run without BEGIN/COMMIT where their
# effect is ONE statement (a statement is atomic on its own: two round trips saved per
# request). Work of several statements opens a transaction with `atomic(conn)`.


def _json_decoder(value: bytes) -> Any:
    return json.loads(value.decode())


def _jsonb_encoder(value: str) -> bytes:
    return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then the text


def _jsonb_decoder(value: bytes) -> Any:
    return json.loads(value[1:].decode())


async def _init_driver_connection(conn: asyncpg.Connection) -> None:
    """JSON in and out exactly as the SQLAlchemy engine's connections do it (serialized text
    in, Python values out), so repository code runs the same on either."""
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=_json_decoder, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=_jsonb_encoder,
        decoder=_jsonb_decoder,
        schema="pg_catalog",
        format="binary",
    )


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default also runs `RESET ALL`, `UNLISTEN *`,
    `CLOSE ALL` and `pg_advisory_unlock_all()`: one more round trip per request, for session
    state the request paths never create (their locks are transaction-scoped, their settings
    `SET LOCAL`)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def plain_postgres_url(url: str) -> str:
    """The URL as asyncpg itself takes it (no SQLAlchemy driver suffix)."""
    return "postgresql://" + asyncpg_url(url).removeprefix("postgresql+asyncpg://")


HOT_PATH_SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
"""Every statement on the driver pool is a prepared statement run thousands of times with
different ids, on plans that must not depend on them or on the statistics of the moment: unique
and partial-index probes, the claim scan from a rank.
- Generic plans: left to choose, Postgres re-planned accept's statement on every execution
  (300 custom plans out of 300 in a test: 1.78 ms per execution against 0.65 ms).
- No sequential scans: a generic plan is made once per connection, with the statistics of that
  moment, and on small tables (projects, gold_stats and worker_blocks in the test suite, or right
  after a deployment) the planner reads them whole. Every statement here has an index to probe.
  (Which index is the statement's own business: see the claim's own-task probe in
  services/tasks/assignments/repository.py.)
tests/services/tasks/assignments check the plans of the hot statements on this pool."""


async def make_driver_pool(url: str, *, max_size: int, application_name: str) -> asyncpg.Pool:
    """Connections are opened on first use (min_size 0) and closed after 5 idle minutes."""
    return await asyncpg.create_pool(
        plain_postgres_url(url),
        min_size=0,
        max_size=max_size,
        init=_init_driver_connection,
        reset=_end_open_transaction,
        server_settings={"application_name": application_name, **HOT_PATH_SERVER_SETTINGS},
    )


_ACQUIRE_TIMEOUT_SECONDS = 30.0  # as SQLAlchemy's pool_timeout: then the request fails (503)


@contextlib.asynccontextmanager
async def request_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A driver-pool connection for one request (shared.hot_path)."""
    pool: asyncpg.Pool = request.app.state.driver_pool
    # The pool replaces a connection the server has closed (Postgres restarted) on acquire.
    conn = await pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECONDS)
    try:
        yield conn
    except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
        # Postgres shutting down sends its "terminating connection" error to idle connections
        # a moment before closing them; a request that meets one in that moment finds the
        # connection's protocol busy with it (InternalClientError) or closed. That is the
        # database going away (503, retry), not a bug, and the connection is done for. Other
        # interface errors (a wrong number of arguments) are bugs and stay 500s.
        if not (isinstance(exc, asyncpg.InternalClientError) or _closed(conn)):
            raise
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        raise DependencyUnavailable(
            "The database is unavailable; retry shortly.", retry_after=2
        ) from exc
    finally:
        # Ends a transaction left open (see _end_open_transaction). A connection the server
        # closed mid-request has been taken back by the pool already.
        with contextlib.suppress(asyncpg.InterfaceError):
            await pool.release(conn)


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # released: the pool took back a connection that closed
        return True


def atomic(conn: asyncpg.Connection) -> AbstractAsyncContextManager[Any]:
    """A transaction around several statements of a request on the driver pool; nothing more when
    one is open already (an Idempotency-Key's, which holds the key row and the work together)."""
    if conn.is_in_transaction():
        return contextlib.nullcontext()
    return conn.transaction()
