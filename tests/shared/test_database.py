"""The data-access kit (shared/database.py): the transaction mode each connection type promises,
Core compiled for asyncpg, and pools that survive connections the server closed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.database import (
    AutocommitDb,
    Database,
    ReadDb,
    ReadDbDep,
    WriteDb,
    WriteDbDep,
    as_row,
    as_rows,
    compile_query,
    make_pool,
)
from shared.errors import Conflict, DependencyUnavailable, install_error_handlers
from shared.models import Account
from shared.models.projects import Project
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import accept, cat_tasks, published_project, workers

INSERT_ACCOUNT = (
    "INSERT INTO accounts (id, kind, name, email, email_normalized)"
    " VALUES ($1, 'worker', 'x', $2, $2)"
)


@pytest.fixture(scope="module")
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(
        pool=await make_pool(database_url, max_size=4, application_name="kit-test"),
        hot_pool=await make_pool(database_url, max_size=4, application_name="kit-hot", hot=True),
    )
    yield database
    await database.close()


def marker() -> str:
    return "KIT" + uuid.uuid4().hex[:20].upper()


async def count(db: asyncpg.Pool, account_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM accounts WHERE id = $1", account_id)


# --------------------------------------------------------------------------- Core for asyncpg


def test_core_compiles_to_numbered_parameters_with_lists_expanded_and_json_serialised() -> None:
    sql, args = compile_query(
        select(Project.id).where(Project.id.in_(["a", "b", "c"]), Project.requester_id == "r"),
        (),
    )
    assert "$1" in sql and "$4" in sql and "POSTCOMPILE" not in sql
    assert sorted(args) == ["a", "b", "c", "r"]  # in the order of their $n (run below)
    sql, args = compile_query(
        update(Project).where(Project.id == "p").values(answer_schema={"type": "object"}), ()
    )
    assert list(args) == ['{"type": "object"}', "p"]  # JSONB goes in as serialized text


def test_text_passes_through_and_core_carries_its_own_values() -> None:
    assert compile_query("SELECT $1", (1,)) == ("SELECT $1", (1,))
    with pytest.raises(TypeError):
        compile_query(select(Project.id), ("stray",))


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    kind: str


async def test_core_and_text_run_on_one_connection_and_rows_become_dataclasses(
    database: Database, db: asyncpg.Pool
) -> None:
    account_id = marker()
    async with database.transaction() as tx:
        await tx.execute(
            pg_insert(Account).values(
                id=account_id, kind="worker", name="x", email="k@x", email_normalized="k@x"
            )
        )
        row = as_row(
            AccountRow,
            await tx.fetchrow(select(Account.id, Account.kind).where(Account.id == account_id)),
        )
        assert row == AccountRow(id=account_id, kind="worker")
        rows = as_rows(
            AccountRow, await tx.fetch("SELECT id, kind FROM accounts WHERE id = $1", account_id)
        )
        assert rows == [row]
        other = marker()
        await tx.execute(INSERT_ACCOUNT, other, f"{other}@x")
        found = await tx.fetch(
            select(Account.id).where(
                Account.id.in_([other, "NOPE", account_id]), Account.kind == "worker"
            )
        )
        assert sorted(r["id"] for r in found) == sorted([account_id, other])
        await tx.execute("DELETE FROM accounts WHERE id = $1", other)
        with pytest.raises(dataclasses_frozen()):
            row.kind = "requester"  # type: ignore[misc]
        await tx.execute("DELETE FROM accounts WHERE id = $1", account_id)
    assert as_row(AccountRow, None) is None


def dataclasses_frozen() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


# --------------------------------------------------------------------------- transaction modes


async def test_a_write_transaction_commits_at_the_end_and_rolls_back_on_error(
    database: Database, db: asyncpg.Pool
) -> None:
    account_id = marker()
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await tx.execute(INSERT_ACCOUNT, account_id, f"{account_id}@x")
            assert await tx.fetchval("SELECT count(*) FROM accounts WHERE id = $1", account_id)
            assert await count(db, account_id) == 0  # not visible before commit
            raise RuntimeError("boom")
    assert await count(db, account_id) == 0
    async with database.transaction() as tx:
        await tx.execute(INSERT_ACCOUNT, account_id, f"{account_id}@x")
    assert await count(db, account_id) == 1
    await db.execute("DELETE FROM accounts WHERE id = $1", account_id)


async def test_autocommit_commits_each_statement_and_a_block_is_one_transaction(
    database: Database, db: asyncpg.Pool
) -> None:
    first, second = marker(), marker()
    async with database.autocommit(hot=True) as auto:
        assert isinstance(auto, AutocommitDb)
        await auto.execute(INSERT_ACCOUNT, first, f"{first}@x")
        assert await count(db, first) == 1  # committed on its own, before the block ends
        with pytest.raises(RuntimeError):
            async with auto.transaction() as tx:
                assert isinstance(tx, WriteDb)
                await tx.execute(INSERT_ACCOUNT, second, f"{second}@x")
                raise RuntimeError("boom")
        assert await count(db, second) == 0
        assert isinstance(auto.reader(), ReadDb)
    await db.execute("DELETE FROM accounts WHERE id = ANY($1::text[])", [first, second])


async def test_the_hot_pool_has_its_planner_settings_and_the_general_pool_not(
    database: Database,
) -> None:
    async with database.autocommit(hot=True) as hot:
        assert await hot.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert await hot.fetchval("SHOW enable_seqscan") == "off"
    async with database.read() as general:
        assert await general.fetchval("SHOW plan_cache_mode") == "auto"
        assert await general.fetchval("SHOW enable_seqscan") == "on"


async def test_routes_get_the_request_transaction_committed_before_the_response(
    database: Database, db: asyncpg.Pool
) -> None:
    """WriteDbDep: a 4xx raised after a write leaves nothing; a success is visible to another
    connection by the time the client has the response. ReadDbDep shares the connection."""
    app = FastAPI()
    app.state.database = database
    install_error_handlers(app)

    @app.post("/write/{account_id}")
    async def write(account_id: str, db: WriteDbDep, fail: bool = False) -> dict[str, int]:
        await db.execute(INSERT_ACCOUNT, account_id, f"{account_id}@x")
        if fail:
            raise Conflict("refused after the write")
        return {"pid": await db.fetchval("SELECT pg_backend_pid()")}

    @app.get("/both")
    async def both(read: ReadDbDep, write: WriteDbDep) -> dict[str, bool]:
        return {
            "same": await read.fetchval("SELECT pg_backend_pid()")
            == await write.fetchval("SELECT pg_backend_pid()")
        }

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        refused, kept = marker(), marker()
        resp = await client.post(f"/write/{refused}", params={"fail": "true"})
        assert resp.status_code == 409
        assert await count(db, refused) == 0
        resp = await client.post(f"/write/{kept}")
        assert resp.status_code == 200 and await count(db, kept) == 1
        assert (await client.get("/both")).json() == {"same": True}
    await db.execute("DELETE FROM accounts WHERE id = $1", kept)


# --------------------------------------------------------------------------- dead connections


async def _terminate(db: asyncpg.Pool, pids: list[int]) -> None:
    await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    for _ in range(100):
        if await db.fetchval(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        ):
            return
        await asyncio.sleep(0.02)


async def test_connections_that_died_in_the_pool_are_replaced_without_a_failed_request(
    apps: dict, workers_client: httpx.AsyncClient, db
) -> None:
    """No ping before each request; a connection the server closed while it sat in the pool
    (Postgres restarted, the backend was terminated) is replaced at checkout, and a BEGIN that
    fails on one is retried on a fresh connection, so the next requests all succeed."""
    worker = await create_worker(workers_client)

    async def profile() -> httpx.Response:
        return await workers_client.get("/v1/workers/me", headers=worker.headers)

    assert all(r.status_code == 200 for r in await asyncio.gather(*(profile() for _ in range(12))))
    pool = apps["workers"].state.database.pool
    held = [await pool.acquire() for _ in range(6)]
    pids = [conn.get_server_pid() for conn in held]
    for conn in held:
        await pool.release(conn)
    await _terminate(db, pids)
    answers = await asyncio.gather(*(profile() for _ in range(12)))
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers]


async def test_hot_pool_connections_that_died_are_replaced_without_a_failed_request(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(40)
    )
    crowd = await workers(workers_client, 12)
    pool = apps["tasks"].state.database.hot_pool
    held = [await pool.acquire() for _ in range(6)]
    pids = [conn.get_server_pid() for conn in held]
    await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

    def closed(conn: asyncpg.Connection) -> bool:
        try:
            return conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took back a connection the server closed
            return True

    for _ in range(250):  # until each connection has seen the server close it
        if all(closed(conn) for conn in held):
            break
        await asyncio.sleep(0.02)
    assert all(closed(conn) for conn in held)
    for conn in held:
        with contextlib.suppress(asyncpg.InterfaceError):  # released already
            await pool.release(conn)
    answers = await asyncio.gather(*(accept(tasks_client, w, project.id) for w in crowd))
    assert [r.status_code for r in answers] == [201] * 12, [r.text for r in answers]


async def test_a_connection_closed_under_a_request_answers_503(database: Database, db) -> None:
    """Postgres going away in the middle of a request: the driver's "connection is closed"
    becomes 503 dependency_unavailable (retry), not a 500."""
    with pytest.raises(DependencyUnavailable):
        async with database.autocommit(hot=True) as auto:
            pid = await auto.fetchval("SELECT pg_backend_pid()")
            await _terminate(db, [pid])
            await auto.fetchval("SELECT 1")


async def test_closing_does_not_wait_forever_for_a_connection_never_released(
    database_url: str,
) -> None:
    database = Database(
        pool=await make_pool(database_url, max_size=2, application_name="kit-close"),
        hot_pool=await make_pool(database_url, max_size=2, application_name="kit-close-hot"),
    )
    leaked = await database.pool.acquire()  # never released, as by a request cut short
    await asyncio.wait_for(database.close(wait_seconds=0.5), 10)  # would hang without the bound
    assert database.pool.is_closing() and database.hot_pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # the leaked connection was terminated
        await leaked.fetchval("SELECT 1")


async def test_a_request_cancelled_while_its_begin_is_on_the_way_releases_the_connection() -> None:
    """The kit's own bookkeeping, on a stand-in pool whose BEGIN never answers: the cancelled
    acquisition hands its connection back (closed), so nothing leaks."""
    from shared.database import _acquire

    class Never:
        async def start(self) -> None:
            await asyncio.Event().wait()

    class Conn:
        terminated = False

        def transaction(self) -> Never:
            return Never()

        def terminate(self) -> None:
            self.terminated = True

    class Pool:
        def __init__(self) -> None:
            self.conn, self.released = Conn(), []

        async def acquire(self, **_: float) -> Conn:
            return self.conn

        async def release(self, conn: Conn) -> None:
            self.released.append(conn)

    pool = Pool()
    task = asyncio.create_task(_acquire(pool, begin=True))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.released == [pool.conn] and pool.conn.terminated
