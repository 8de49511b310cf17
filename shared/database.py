"""The one way a request (or a background job) reaches Postgres: a connection whose transaction
mode is in its type.

    ReadDb        reads that tolerate a little staleness; autocommit; may later be served by a
                  read replica. Never writes.
    WriteDb       the request's transaction on the primary: begun before the route runs,
                  committed before the response is sent (a client that sees 201 can rely on the
                  row being visible to every service), rolled back when anything raises.
    AutocommitDb  the hot paths (accept, submit, return, approve, reject): each statement is
                  its own transaction, so an effect that is ONE statement costs no BEGIN/COMMIT
                  round trips. Work of several statements says so: `async with db.transaction()
                  as tx:` gives a WriteDb for the block.

A service function's signature therefore says what it may assume: one taking `WriteDb` runs
inside a transaction whoever calls it; one taking `AutocommitDb` knows every statement commits
alone and opens a transaction where it needs one. Repositories take the narrowest type that
fits (`Db` for a read any of them can run).

All three run on asyncpg; SQL is either a hand-tuned string with `$n` parameters or a
SQLAlchemy Core statement, compiled here (docs/architecture.md, "Writing SQL", says which to
use when). Both return asyncpg records, which repositories turn into frozen dataclasses
(`as_row`, `as_rows`) before anything above them sees a row.

Two pools of the same kind per process: the general one, and the hot paths' one, whose
planner settings suit a few prepared statements run thousands of times
(`HOT_PATH_SERVER_SETTINGS`). They differ in nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.dialects.postgresql import asyncpg as _asyncpg_dialect
from sqlalchemy.sql import Executable

from shared.errors import DependencyUnavailable

Query = str | Executable
"""SQL text with `$1..$n` parameters, or a SQLAlchemy Core statement (select, insert, ...)."""

R = TypeVar("R")
log = logging.getLogger("database")

_DIALECT = _asyncpg_dialect.dialect()


def compile_query(query: Query, args: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """SQL text and positional arguments for asyncpg. Core statements carry their own values
    (`args` must then be empty); their bind processors run here (JSON columns serialised,
    `IN (...)` lists expanded)."""
    if isinstance(query, str):
        return query, args
    if args:
        raise TypeError("a Core statement carries its own parameters")
    compiled = query.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    processors = compiled._bind_processors
    values = [
        processors[name](params[name]) if name in processors else params[name]
        for name in compiled.positiontup or ()
    ]
    return str(compiled), values


def as_row(cls: type[R], record: asyncpg.Record | None) -> R | None:
    """A record as the repository's row type (a frozen dataclass whose fields are the
    statement's column names), or None."""
    return None if record is None else cls(**record)


def as_rows(cls: type[R], records: Iterable[asyncpg.Record]) -> list[R]:
    return [cls(**record) for record in records]


class Db:
    """SQL on one connection (see the module docstring for the three kinds)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        sql, values = compile_query(query, args)
        return await self._conn.fetch(sql, *values)

    async def fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None:
        sql, values = compile_query(query, args)
        return await self._conn.fetchrow(sql, *values)

    async def fetchval(self, query: Query, *args: Any) -> Any:
        sql, values = compile_query(query, args)
        return await self._conn.fetchval(sql, *values)

    async def execute(self, query: Query, *args: Any) -> str:
        sql, values = compile_query(query, args)
        return await self._conn.execute(sql, *values)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, args)

    async def copy_records_to_table(
        self, table: str, *, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> str:
        return await self._conn.copy_records_to_table(table, records=records, columns=columns)

    async def copy_from_query(
        self, query: str, *args: Any, output: Any, format: str = "csv"
    ) -> str:
        """COPY a query's rows out (a path, a file or a coroutine function taking each chunk):
        bulk reads that must not become one Python object per row (aggregation loads)."""
        return await self._conn.copy_from_query(query, *args, output=output, format=format)

    def cursor(self, query: str, *args: Any, prefetch: int | None = None) -> Any:
        """Rows of a large read as they come (inside a transaction: results exports)."""
        return self._conn.cursor(query, *args, prefetch=prefetch)


class ReadDb(Db):
    """Reads in autocommit; the data may be a moment old (a replica may serve them)."""

    __slots__ = ()


class WriteDb(Db):
    """Inside the request's (or the block's) transaction on the primary."""

    __slots__ = ()

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[WriteDb]:
        """A part of the transaction that can fail alone: undone back to where it began when
        the block raises, the transaction going on (asyncpg's nested transaction is a
        SAVEPOINT)."""
        async with self._conn.transaction():
            yield self


class AutocommitDb(Db):
    """On the primary, each statement its own transaction."""

    __slots__ = ()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteDb]:
        """Several statements as one: committed when the block ends, rolled back if it
        raises."""
        async with self._conn.transaction():
            yield WriteDb(self._conn)

    def reader(self) -> ReadDb:
        """The same connection for reads (a read on the primary is never stale)."""
        return ReadDb(self._conn)


Writable = WriteDb | AutocommitDb
"""A connection that may write: in a transaction, or one statement at a time (a function taking
it runs ONE statement, or takes a transaction with `in_transaction`)."""


@contextlib.asynccontextmanager
async def in_transaction(db: Writable) -> AsyncIterator[WriteDb]:
    """The block as one transaction: `db` itself when it is one already (the request's, or an
    Idempotency-Key's, which holds the key row and the work together), else one opened on the
    autocommit connection."""
    if isinstance(db, WriteDb):
        yield db
    else:
        async with db.transaction() as tx:
            yield tx


# --------------------------------------------------------------------------- pools


def asyncpg_dsn(url: str) -> str:
    """Accept postgresql://, postgres:// and SQLAlchemy's postgresql+asyncpg:// URLs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    raise ValueError("not a PostgreSQL URL")


def _json_decoder(value: bytes) -> Any:
    return json.loads(value.decode())


def _jsonb_encoder(value: str) -> bytes:
    return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then the text


def _jsonb_decoder(value: bytes) -> Any:
    return json.loads(value[1:].decode())


async def _init_connection(conn: asyncpg.Connection) -> None:
    """JSON goes in as serialized text (repositories and Core's JSON type serialise it) and
    comes out as Python values."""
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
    """The pools' reset on release. asyncpg's default also runs `RESET ALL`, `UNLISTEN *`,
    `CLOSE ALL` and `pg_advisory_unlock_all()`: one more round trip per request, for session
    state the request paths never create (their locks are transaction-scoped, their settings
    `SET LOCAL`)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


HOT_PATH_SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
"""Every statement on the hot pool is a prepared statement run thousands of times with
different ids, on plans that must not depend on them or on the statistics of the moment: unique
and partial-index probes, the claim scan from a rank.
- Generic plans: left to choose, Postgres re-planned accept's statement on every execution
  (300 custom plans out of 300 in a test: 1.78 ms per execution against 0.65 ms).
- No sequential scans: a generic plan is made once per connection, with the statistics of that
  moment, and on small tables (projects, gold_stats and worker_blocks in the test suite, or right
  after a deployment) the planner reads them whole. Every statement here has an index to probe
  (which index is the statement's own business: see the claim's own-task probe).
The plan tests of the hot statements run on this pool."""


async def make_pool(
    url: str, *, max_size: int, application_name: str, hot: bool = False
) -> asyncpg.Pool:
    """Connections are opened on first use (min_size 0) and closed after 5 idle minutes. No
    overflow, no pre-ping: asyncpg drops a connection the server closed when it is acquired."""
    settings = {"application_name": application_name}
    if hot:
        settings |= HOT_PATH_SERVER_SETTINGS
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=0,
        max_size=max_size,
        init=_init_connection,
        reset=_end_open_transaction,
        server_settings=settings,
    )


@dataclass(slots=True)
class Database:
    """A process's pools (app.state.database); background jobs take connections here too."""

    pool: asyncpg.Pool
    hot_pool: asyncpg.Pool

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[ReadDb]:
        async with _connection(self.pool) as (conn, _):
            yield ReadDb(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteDb]:
        async with _connection(self.pool, begin=True) as (conn, transaction):
            try:
                yield WriteDb(conn)
            except BaseException:
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.InternalClientError):
                    await transaction.rollback()
                raise
            else:
                await transaction.commit()

    @contextlib.asynccontextmanager
    async def autocommit(self, *, hot: bool = False) -> AsyncIterator[AutocommitDb]:
        async with _connection(self.hot_pool if hot else self.pool) as (conn, _):
            yield AutocommitDb(conn)

    async def ready(self) -> bool:
        try:
            async with _connection(self.pool) as (conn, _):
                await conn.fetchval("SELECT 1")
            return True
        except Exception:
            return False

    async def close(self, *, wait_seconds: float = 10.0) -> None:
        """Close both pools at shutdown. asyncpg waits for every connection to come back, and
        a connection never released (a request cancelled at the wrong moment) would hold the
        process forever: after `wait_seconds` the rest are terminated, with a warning."""
        for pool in (self.hot_pool, self.pool):
            try:
                await asyncio.wait_for(pool.close(), wait_seconds)
            except TimeoutError:
                log.warning(
                    "database pool not closed within %.0f s (connections still checked out): "
                    "terminated",
                    wait_seconds,
                )
                pool.terminate()


_ACQUIRE_TIMEOUT_SECONDS = 30.0  # a request past the pool's size waits, then answers 503
_BEGIN_ATTEMPTS = 3


@contextlib.asynccontextmanager
async def _connection(
    pool: asyncpg.Pool, *, begin: bool = False
) -> AsyncIterator[tuple[asyncpg.Connection, Any]]:
    """A connection from `pool` (and, with `begin`, its started transaction)."""
    conn, transaction = await _acquire(pool, begin=begin)
    try:
        yield conn, transaction
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


async def _acquire(pool: asyncpg.Pool, *, begin: bool) -> tuple[asyncpg.Connection, Any]:
    """A connection (the pool replaces one the server closed), and with `begin` its transaction
    started.

    BEGIN is the first round trip, so it also tells whether the connection works: Postgres
    shutting down sends "terminating connection" to every idle connection a moment before it
    closes them, and a checkout in that moment gets a connection that is neither open nor
    closed. Nothing has run in the transaction yet, so a fresh connection is safe; with
    Postgres down, the connect fails and the request answers 503."""
    for attempt in range(_BEGIN_ATTEMPTS):
        conn = await pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECONDS)
        if not begin:
            return conn, None
        transaction = conn.transaction()
        try:
            await transaction.start()
            return conn, transaction
        except BaseException as exc:
            # Not usable (retried below), or the request was cancelled while BEGIN was on its
            # way (the connection's state is unknown): either way it is closed and handed back
            # here, since nobody else holds it yet (a cancelled request used to leak it, and
            # the pool then waited for it forever at shutdown).
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            with contextlib.suppress(asyncpg.InterfaceError):
                await pool.release(conn)
            retry = isinstance(exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError))
            if not retry or attempt == _BEGIN_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # released: the pool took back a connection that closed
        return True


# --------------------------------------------------------------------------- dependencies


async def _request_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """The request's connection on the general pool, in the request's transaction: begun before
    the route runs (on a connection known to work), committed before the response is sent,
    rolled back when anything raises. Authentication, idempotency and the route share it, so a
    request holds one connection and its work is one transaction."""
    database: Database = request.app.state.database
    async with database.transaction() as db:
        yield db._conn


RequestConnection = Annotated[asyncpg.Connection, Depends(_request_connection, scope="function")]
"""For the kit (auth, idempotency): services and routes take ReadDbDep or WriteDbDep."""


async def _read_db(conn: RequestConnection) -> ReadDb:
    return ReadDb(conn)


async def _write_db(conn: RequestConnection) -> WriteDb:
    return WriteDb(conn)


ReadDbDep = Annotated[ReadDb, Depends(_read_db)]
"""The request's connection, for a route that only reads. Same transaction as WriteDbDep today;
reads that tolerate staleness may move to a replica without touching the routes."""
WriteDbDep = Annotated[WriteDb, Depends(_write_db)]
"""The request's transaction, committed before the response is sent."""
