"""The one way a request (or a background job) reaches Postgres: a connection whose transaction
mode is in its type.

    ReadDb        reads. From ReadDbDep: the request's connection on the primary (the caller
                  sees its own writes). From StaleReadDbDep: the read replica while it is usable
                  (a ReplicaReadDb), for reads that tolerate a few seconds of staleness. Never
                  writes.
    SnapshotDb    reads in one read-only REPEATABLE READ transaction (one consistent snapshot).
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

All run on asyncpg; SQL is either a hand-tuned string with `$n` parameters or a
SQLAlchemy Core statement, compiled here (docs/architecture.md, "Writing SQL", says which to
use when). Both return asyncpg records, which repositories turn into frozen dataclasses
(`as_row`, `as_rows`) before anything above them sees a row.

Two pools of the same kind per process: the general one, and the hot paths' one, whose
planner settings suit a few prepared statements run thousands of times
(`HOT_PATH_SERVER_SETTINGS`). They differ in nothing else.

Optionally a third, on a streaming read replica (`ReadReplica`, `*_READ_DATABASE_URL`): the
reads that tolerate staleness (`StaleReadDbDep`, `Database.read(stale_ok=True)`,
`Database.snapshot(stale_ok=True)`) go there while a background probe finds the replica up and
its lag within `*_READ_REPLICA_MAX_LAG_SECONDS`, and to the primary otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.dialects.postgresql import asyncpg as _asyncpg_dialect
from sqlalchemy.sql import Executable

from shared.errors import DependencyUnavailable
from shared.metrics import observe_acquire

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
    """Reads in autocommit on the primary; a `ReplicaReadDb` (stale reads) is one too."""

    __slots__ = ()


class SnapshotDb(ReadDb):
    """Reads inside one read-only REPEATABLE READ transaction: every statement sees the same
    snapshot (a results export while workers keep submitting), and nothing can write. A
    `cursor` works here (it needs a transaction)."""

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
    url: str,
    *,
    max_size: int,
    application_name: str,
    hot: bool = False,
    connect_timeout: float = 60.0,
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
        timeout=connect_timeout,
    )


@dataclass(slots=True)
class Database:
    """A process's pools (app.state.database); background jobs take connections here too."""

    pool: asyncpg.Pool
    hot_pool: asyncpg.Pool
    replica: ReadReplica | None = None

    @contextlib.asynccontextmanager
    async def read(self, *, stale_ok: bool = False) -> AsyncIterator[ReadDb]:
        """A connection for reads. `stale_ok`: on the replica when it is usable (statements
        that meet it failing are run again on a primary connection, taken then)."""
        async with contextlib.AsyncExitStack() as stack:
            replica_conn = None
            if stale_ok and self.replica is not None:
                replica_conn = await stack.enter_async_context(self.replica.connection())
            if replica_conn is None:
                conn, _ = await stack.enter_async_context(_connection(self.pool))
                yield ReadDb(conn)
            else:

                async def primary() -> asyncpg.Connection:
                    conn, _ = await stack.enter_async_context(_connection(self.pool))
                    return conn

                yield ReplicaReadDb(replica_conn, self.replica, primary)

    @contextlib.asynccontextmanager
    async def snapshot(self, *, stale_ok: bool = False) -> AsyncIterator[SnapshotDb]:
        """One read-only REPEATABLE READ transaction. `stale_ok`: on the replica when it is
        usable; a replica failure inside the block marks it down and raises ReplicaUnavailable
        (the caller may start over on the primary if it has sent nothing yet)."""
        if stale_ok and self.replica is not None:
            async with self.replica.snapshot() as db:
                if db is not None:
                    yield db
                    return
        async with _connection(self.pool, begin=True, snapshot=True) as (conn, transaction):
            try:
                yield SnapshotDb(conn)
            except BaseException:
                await _rollback_quietly(transaction)
                raise
            await transaction.commit()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteDb]:
        async with _connection(self.pool, begin=True) as (conn, transaction):
            try:
                yield WriteDb(conn)
            except BaseException:
                await _rollback_quietly(transaction)
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
        """Close the pools at shutdown (the replica's probe stops first). asyncpg waits for
        every connection to come back, and a connection never released (a request cancelled
        at the wrong moment) would hold the process forever: after `wait_seconds` the rest are
        terminated, with a warning."""
        pools = [self.hot_pool, self.pool]
        if self.replica is not None:
            await self.replica.stop_probe()
            pools.append(self.replica.pool)
        for pool in pools:
            await _close_pool(pool, wait_seconds)


async def _rollback_quietly(transaction: Any) -> None:
    """Roll back after the block raised (a connection already gone has nothing to undo)."""
    with contextlib.suppress(asyncpg.InterfaceError, asyncpg.InternalClientError):
        await transaction.rollback()


async def _close_pool(pool: asyncpg.Pool, wait_seconds: float) -> None:
    try:
        await asyncio.wait_for(pool.close(), wait_seconds)
    except TimeoutError:
        log.warning(
            "database pool not closed within %.0f s (connections still checked out): terminated",
            wait_seconds,
        )
        pool.terminate()


_ACQUIRE_TIMEOUT_SECONDS = 30.0  # a request past the pool's size waits, then answers 503
_BEGIN_ATTEMPTS = 3


@contextlib.asynccontextmanager
async def _connection(
    pool: asyncpg.Pool, *, begin: bool = False, snapshot: bool = False
) -> AsyncIterator[tuple[asyncpg.Connection, Any]]:
    """A connection from `pool` (and, with `begin`, its started transaction: with `snapshot`
    a read-only REPEATABLE READ one)."""
    conn, transaction = await _acquire(pool, begin=begin, snapshot=snapshot)
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


async def _acquire(
    pool: asyncpg.Pool,
    *,
    begin: bool,
    snapshot: bool = False,
    attempts: int = _BEGIN_ATTEMPTS,
    acquire_timeout: float = _ACQUIRE_TIMEOUT_SECONDS,
) -> tuple[asyncpg.Connection, Any]:
    """A connection (the pool replaces one the server closed), and with `begin` its transaction
    started.

    BEGIN is the first round trip, so it also tells whether the connection works: Postgres
    shutting down sends "terminating connection" to every idle connection a moment before it
    closes them, and a checkout in that moment gets a connection that is neither open nor
    closed. Nothing has run in the transaction yet, so a fresh connection is safe; with
    Postgres down, the connect fails and the request answers 503."""
    for attempt in range(attempts):
        waiting_since = time.perf_counter()
        conn = await pool.acquire(timeout=acquire_timeout)
        observe_acquire(pool, time.perf_counter() - waiting_since)
        if not begin:
            return conn, None
        transaction = (
            conn.transaction(isolation="repeatable_read", readonly=True)
            if snapshot
            else conn.transaction()
        )
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
            # InternalClientError ("cannot switch to state ...; another operation is in
            # progress"): BEGIN met the server's "terminating connection" being processed on a
            # connection checked out in that moment (seen under `pg_ctl stop` in CI).
            retry = isinstance(
                exc,
                (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ),
            )
            if not retry or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # released: the pool took back a connection that closed
        return True


# --------------------------------------------------------------------------- the read replica

REPLICA_LAG_SQL = """
SELECT pg_is_in_recovery() AS standby,
       coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), false) AS replayed_all,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_commit
"""
"""What the replica itself knows of its lag (the one statement of each probe; see judge_lag)."""

_NOT_PROBED = "not probed yet"
REPLICA_ACQUIRE_TIMEOUT_SECONDS = 2.0
"""A stale read waits this long for a replica connection, then reads on the primary."""
REPLICA_CONNECT_TIMEOUT_SECONDS = 2.0
"""Opening a replica connection (pool or probe) gives up after this: an unreachable host must
not hold a request for asyncpg's default of 60 s."""


def judge_lag(
    *, standby: bool, replayed_all: bool, receiver: str | None, since_commit: float | None
) -> tuple[float | None, str]:
    """The replica's lag in seconds (None: unknown, or not a replica at all) and why.

    - Everything the replica has received is replayed, and its WAL receiver is streaming: lag
      0, however long ago the last commit was (an idle primary commits nothing, so the age of
      the last replayed commit says nothing about staleness then).
    - Otherwise, WAL is waiting to be replayed (replay slow or paused), or the receiver is not
      streaming (the primary may be writing what the replica does not get): the age of the last
      commit replayed, an upper bound of how old the replica's data is. Unknown when nothing
      has been replayed since the replica started.
    - The receiver's status is shown only to roles with pg_read_all_stats (or superusers); for
      others it reads NULL and the first rule trusts the received WAL alone. Grant the
      services' role `pg_monitor` to make the check strict.
    - Not in recovery (promoted, or the URL names a primary): never used, its data may have
      parted from the primary's.

    Time is the replica's `now()` against commit times stamped by the primary: clock skew
    between the two hosts adds to (or hides) lag.
    """
    if not standby:
        return None, "not a standby (promoted, or the URL names a primary)"
    if replayed_all and receiver in (None, "streaming"):
        return 0.0, "caught up"
    if since_commit is None:
        return None, "lag unknown: no transaction replayed since the replica started"
    why = "replaying" if receiver in (None, "streaming") else f"WAL receiver {receiver}"
    return max(since_commit, 0.0), why


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the last probe (or a failed read since) found."""

    usable: bool
    lag_seconds: float | None
    reason: str
    checked_at: float  # time.monotonic()


class ReplicaUnavailable(DependencyUnavailable):
    """The replica failed under a read; raised only where the read cannot be run again on the
    primary by the kit itself (inside a snapshot: the caller decides)."""


def replica_failed(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """Whether `exc` says the replica (or the way to it) failed, rather than the statement:
    the read is then right on the primary. Connection errors, the server shutting down or
    starting (class 57: "terminating connection due to administrator command", "the database
    system is starting up"), too many connections (class 53), and a query cancelled by a
    recovery conflict (40001: replay needed what it was reading)."""
    if isinstance(exc, (OSError, TimeoutError, asyncpg.InternalClientError)):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return conn is None or _closed(conn)
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(("08", "53", "57")) or state == "40001"
    return False


class ReplicaReadDb(ReadDb):
    """Reads on the replica. A statement that meets a failing replica marks it down and runs
    again on the primary (a read is safe to repeat), as does every statement after it in this
    request: the route never sees the failure."""

    __slots__ = ("_fallback", "_on_replica", "_replica")

    def __init__(
        self,
        conn: asyncpg.Connection,
        replica: ReadReplica,
        fallback: Callable[[], Awaitable[asyncpg.Connection]],
    ) -> None:
        super().__init__(conn)
        self._replica = replica
        self._fallback = fallback
        self._on_replica = True

    async def _run(self, method: str, query: Query, args: Sequence[Any]) -> Any:
        sql, values = compile_query(query, args)
        if self._on_replica:
            conn = self._conn
            try:
                return await getattr(conn, method)(sql, *values)
            except Exception as exc:
                if not replica_failed(exc, conn):
                    raise
                self._replica.connection_failed(conn, exc)  # released by whoever acquired it
                self._conn = await self._fallback()
                self._on_replica = False
        return await getattr(self._conn, method)(sql, *values)

    async def fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        return await self._run("fetch", query, args)

    async def fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None:
        return await self._run("fetchrow", query, args)

    async def fetchval(self, query: Query, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: Query, *args: Any) -> str:
        return await self._run("execute", query, args)


class ReadReplica:
    """A process's streaming replica: its pool, and whether stale reads may go there now.

    Nothing is asked of the replica per request: a background probe (`start_probe`, owned by
    the app's lifespan) runs REPLICA_LAG_SQL every `probe_interval_seconds` on a connection of
    its own and keeps `state`, which `usable` reads. A read that fails on the replica marks it
    down at once (`failed`); the next good probe brings it back. A state older than two periods
    plus two probe timeouts (the probe stuck) counts as down too.

    Counters for dashboards and tests: `reads_on_replica` (stale reads begun on the replica),
    `reads_on_primary` (stale reads sent to the primary: replica down, lagging or busy), and
    `failovers` (reads that met a failing replica, at connect or mid-statement, and went on on
    the primary).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        dsn: str,
        application_name: str,
        max_lag_seconds: float,
        probe_interval_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.application_name = application_name
        self.max_lag_seconds = max_lag_seconds
        self.probe_interval_seconds = probe_interval_seconds
        self._dsn = dsn
        self._clock = clock
        self._probe_timeout = max(1.0, probe_interval_seconds)
        self._state = ReplicaState(False, None, _NOT_PROBED, clock())
        self._failures = 0  # moves on every failed read: a probe begun before one is not believed
        self._probe_conn: asyncpg.Connection | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self.reads_on_replica = 0
        self.reads_on_primary = 0
        self.failovers = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        max_size: int,
        application_name: str,
        max_lag_seconds: float,
        probe_interval_seconds: float = 1.0,
    ) -> ReadReplica:
        """The replica's pool (connections opened on first use, so a replica that is down at
        startup delays nothing) and its probe, started."""
        pool = await make_pool(
            url,
            max_size=max_size,
            application_name=application_name,
            connect_timeout=REPLICA_CONNECT_TIMEOUT_SECONDS,
        )
        replica = cls(
            pool,
            dsn=asyncpg_dsn(url),
            application_name=application_name,
            max_lag_seconds=max_lag_seconds,
            probe_interval_seconds=probe_interval_seconds,
        )
        replica.start_probe()
        return replica

    @property
    def state(self) -> ReplicaState:
        return self._state

    @property
    def usable(self) -> bool:
        state = self._state
        fresh = self._clock() - state.checked_at <= 2 * (
            self.probe_interval_seconds + self._probe_timeout
        )
        return state.usable and fresh

    def failed(self, exc: BaseException) -> None:
        """A read met a failing replica: reads go to the primary until a probe finds it well."""
        self._failures += 1
        self.failovers += 1
        self._set(ReplicaState(False, None, f"read failed: {_describe(exc)}", self._clock()))

    def _set(self, state: ReplicaState) -> None:
        """Keep `state`; say so in the log when reads change sides (and when the very first
        probe finds the replica unusable: a wrong URL must not go unnoticed)."""
        was = self._state
        self._state = state
        if state.usable and not was.usable:
            log.info("read replica in use (lag %.2f s)", state.lag_seconds or 0.0)
        elif not state.usable and (was.usable or was.reason == _NOT_PROBED):
            log.warning("read replica bypassed, reads go to the primary: %s", state.reason)

    # ----------------------------------------------------------------- the probe

    async def probe(self) -> ReplicaState:
        """Ask the replica its lag once; the new state (also kept). Never raises."""
        failures = self._failures
        try:
            if self._probe_conn is None or self._probe_conn.is_closed():
                self._probe_conn = await asyncpg.connect(
                    self._dsn,
                    timeout=REPLICA_CONNECT_TIMEOUT_SECONDS,
                    server_settings={"application_name": f"{self.application_name}-probe"},
                )
            row = await self._probe_conn.fetchrow(REPLICA_LAG_SQL, timeout=self._probe_timeout)
        except Exception as exc:
            await self._drop_probe_connection()
            state = ReplicaState(False, None, f"unreachable: {_describe(exc)}", self._clock())
        else:
            assert row is not None
            lag, why = judge_lag(
                standby=row["standby"],
                replayed_all=row["replayed_all"],
                receiver=row["receiver"],
                since_commit=row["since_commit"],
            )
            usable = lag is not None and lag <= self.max_lag_seconds
            if lag is not None and not usable:
                why = f"lag {lag:.2f} s over {self.max_lag_seconds:g} s ({why})"
            if usable and failures != self._failures:
                usable, why = False, self._state.reason  # a read failed while we asked
            state = ReplicaState(usable, lag, why, self._clock())
        self._set(state)
        return state

    def start_probe(self) -> None:
        if self._probe_task is None:
            self._probe_task = asyncio.create_task(self._probe_forever(), name="replica-probe")

    async def stop_probe(self) -> None:
        task, self._probe_task = self._probe_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_probe_connection()

    async def _probe_forever(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # a bug here must not end the probing (reads would stay off)
                log.exception("read replica probe failed")
            await asyncio.sleep(self.probe_interval_seconds)

    async def _drop_probe_connection(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    # ----------------------------------------------------------------- connections

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection | None]:
        """A replica connection for a stale read, or None: the read goes to the primary (the
        replica is down or lagging, or no connection could be had in
        REPLICA_ACQUIRE_TIMEOUT_SECONDS; a failed connect also marks it down)."""
        conn, _ = await self._checkout(begin=False)
        if conn is None:
            yield None
            return
        try:
            yield conn
        finally:
            with contextlib.suppress(asyncpg.InterfaceError):
                await self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SnapshotDb | None]:
        """A read-only REPEATABLE READ transaction on the replica, or None (see connection()).
        A replica failure inside the block marks it down and becomes ReplicaUnavailable."""
        conn, transaction = await self._checkout(begin=True)
        if conn is None:
            yield None
            return
        try:
            try:
                yield SnapshotDb(conn)
            except Exception as exc:
                if not replica_failed(exc, conn):
                    await _rollback_quietly(transaction)
                    raise
                self.connection_failed(conn, exc)
                raise ReplicaUnavailable(
                    "The read replica failed during the read; retry.", retry_after=1
                ) from exc
            except BaseException:  # cancelled, or the client went away mid-export
                await _rollback_quietly(transaction)
                raise
            try:
                await transaction.commit()
            except Exception as exc:
                # Everything was read: a read-only transaction that cannot commit lost nothing.
                if not replica_failed(exc, conn):
                    raise
                self.connection_failed(conn, exc)
        finally:
            with contextlib.suppress(asyncpg.InterfaceError):
                await self.pool.release(conn)

    def connection_failed(self, conn: asyncpg.Connection, exc: BaseException) -> None:
        """A read on `conn` met a failing replica: down it goes, and the connection with it."""
        self.failed(exc)
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()  # the pool replaces it on its next checkout

    async def _checkout(self, *, begin: bool) -> tuple[asyncpg.Connection | None, Any]:
        if not self.usable:
            self.reads_on_primary += 1
            return None, None
        try:
            conn, transaction = await _acquire(
                self.pool,
                begin=begin,
                snapshot=begin,
                attempts=1,
                acquire_timeout=REPLICA_ACQUIRE_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            # Every connection busy (or the host silent: then the probe will say so).
            self.reads_on_primary += 1
            return None, None
        except Exception as exc:
            if not replica_failed(exc):
                raise
            self.failed(exc)
            self.reads_on_primary += 1
            return None, None
        self.reads_on_replica += 1
        return conn, transaction


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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


async def _stale_read_db(request: Request, conn: RequestConnection) -> AsyncIterator[ReadDb]:
    """On the replica when one is configured and usable, else the request's own connection."""
    replica: ReadReplica | None = request.app.state.database.replica
    if replica is None:
        yield ReadDb(conn)
        return

    async def primary() -> asyncpg.Connection:
        return conn

    async with replica.connection() as replica_conn:
        yield (
            ReadDb(conn) if replica_conn is None else ReplicaReadDb(replica_conn, replica, primary)
        )


ReadDbDep = Annotated[ReadDb, Depends(_read_db)]
"""The request's connection (on the primary, in the request's transaction), for a route that
only reads and must see the latest committed state: its caller's own writes, money, claims."""
StaleReadDbDep = Annotated[ReadDb, Depends(_stale_read_db, scope="function")]
"""For reads that tolerate data a few seconds old (listings, exports, statistics): on the read
replica while it is up and within `*_READ_REPLICA_MAX_LAG_SECONDS`, else on the request's
connection. Authentication still runs on the primary (a revoked key must be refused at once).
docs/architecture.md lists the routes that use it, and why each may."""
WriteDbDep = Annotated[WriteDb, Depends(_write_db)]
"""The request's transaction, committed before the response is sent."""
