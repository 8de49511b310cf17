"""The read replica: stale-tolerant reads go to a real streaming replica, everything else (and
those reads too, while the replica is down or lagging) to the primary.

The module runs its own pair of embedded servers: a primary made for replication and a replica
cloned from it with `pg_basebackup -R` (about a second for both), so pausing replay or stopping
the replica disturbs no other test. The three apps run in this process, pointed at both
(`*_READ_DATABASE_URL`), with a short probe period and lag limit so the test takes seconds.

Where a read runs is seen from the servers, not from the code: the primary takes an ACCESS
EXCLUSIVE lock on the table the read needs, the replica replays that lock (standbys hold the
primary's exclusive locks), and the read waits for it on whichever server it was sent to, where
`pg_stat_activity` shows it waiting, with the application_name of its pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from shared.database import (
    ReadReplica,
    ReplicaReadDb,
    ReplicaState,
    judge_lag,
    replica_failed,
)
from shared.money import format_cents
from tests.conftest import INTERNAL_TOKEN, MESH_URLS, ROOT, SERVICES, ServiceMesh
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import cents, deposit
from tests.fixtures.tasks import PROJECT_DEFAULTS, accept, approve, cat_tasks, submit

DB_NAME = "replica_test"
MAX_LAG_SECONDS = 1.0
PROBE_SECONDS = 0.2


# --------------------------------------------------------------------------- lag rules


@pytest.mark.parametrize(
    ("row", "lag"),
    [
        # Caught up: the age of the last commit means nothing (an idle primary commits nothing).
        ({"replayed_all": True, "receiver": "streaming", "since_commit": 3600.0}, 0.0),
        ({"replayed_all": True, "receiver": None, "since_commit": None}, 0.0),
        # WAL waiting for replay (slow or paused): the age of the last commit replayed.
        ({"replayed_all": False, "receiver": "streaming", "since_commit": 7.5}, 7.5),
        ({"replayed_all": False, "receiver": "streaming", "since_commit": None}, None),
        # Not receiving: replayed all it got, but the primary may have written more.
        ({"replayed_all": True, "receiver": "waiting", "since_commit": 12.0}, 12.0),
        ({"replayed_all": True, "receiver": "stopping", "since_commit": None}, None),
        # Clocks a little apart: never a negative lag.
        ({"replayed_all": False, "receiver": "streaming", "since_commit": -0.3}, 0.0),
    ],
)
def test_lag_as_the_replica_sees_it(row: dict[str, Any], lag: float | None) -> None:
    assert judge_lag(standby=True, **row)[0] == lag


def test_a_server_out_of_recovery_is_never_used() -> None:
    lag, why = judge_lag(standby=False, replayed_all=False, receiver=None, since_commit=None)
    assert lag is None and "not a standby" in why


@pytest.mark.parametrize(
    ("exc", "replica_at_fault"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), True),
        (asyncpg.exceptions.SerializationError("conflict with recovery"), True),
        # The statement's own fault: the same on the primary, so no failover hides it.
        (asyncpg.exceptions.UndefinedColumnError("column does not exist"), False),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_are_the_replicas(exc: BaseException, replica_at_fault: bool) -> None:
    assert replica_failed(exc) is replica_at_fault


def test_a_probe_too_old_counts_as_down() -> None:
    """The state is believed only while the probe keeps it fresh (a stuck probe must not keep
    reads on a replica nobody is watching)."""
    now = [100.0]
    replica = ReadReplica(
        None,  # type: ignore[arg-type]  # no pool needed: only the state is exercised
        dsn="postgresql://unused",
        application_name="t-replica",
        max_lag_seconds=5,
        probe_interval_seconds=1.0,
        clock=lambda: now[0],
    )
    assert not replica.usable  # not probed yet
    replica._set(ReplicaState(True, 0.0, "caught up", now[0]))
    assert replica.usable
    now[0] += 3.9
    assert replica.usable
    now[0] += 0.2  # two periods of (interval + probe timeout) without news
    assert not replica.usable
    replica._set(ReplicaState(True, 0.0, "caught up", now[0]))
    replica.failed(OSError("connection refused"))
    assert not replica.usable and "read failed" in replica.state.reason
    assert replica.failovers == 1


def test_without_the_setting_there_is_no_replica(apps: dict) -> None:
    for app in apps.values():
        assert app.state.settings.read_database_url is None
        assert app.state.database.replica is None


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    primary: Any  # devtools.embedded_pg.EmbeddedPostgres
    replica: Any
    primary_url: str
    replica_url: str


def _migrate(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from devtools.embedded_pg import EmbeddedPostgres

    base = tmp_path_factory.mktemp("replication")
    primary = EmbeddedPostgres(base / "primary", fast=True, replication=True)
    primary.start()
    replica = None
    try:
        primary.create_database(DB_NAME)
        primary_url = primary.dsn(DB_NAME)
        _migrate(primary_url)
        replica = primary.create_replica(base / "replica")
        replica.start()
        yield Cluster(primary, replica, primary_url, replica.dsn(DB_NAME))
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def _settings(svc: str, cluster: Cluster) -> Any:
    module = importlib.import_module(f"services.{svc}.settings")
    # Nothing in the background may wait on the tables the test locks (the timers sweep tasks
    # and projects; the periodic ledger check reads every ledger entry).
    extra: dict[str, Any] = {
        "tasks": {"timers_enabled": False},
        "payments": {"ledger_check_interval_seconds": 0},
    }.get(svc, {})
    return module.Settings(
        **extra,
        database_url=cluster.primary_url,
        read_database_url=cluster.replica_url,
        read_replica_max_lag_seconds=MAX_LAG_SECONDS,
        read_replica_probe_seconds=PROBE_SECONDS,
        internal_token=INTERNAL_TOKEN,
        tasks_url=MESH_URLS["tasks"],
        workers_url=MESH_URLS["workers"],
        payments_url=MESH_URLS["payments"],
        log_level="WARNING",
        rate_limit_signup="100000/minute",
        rate_limit_per_key="100000/minute",
    )


@dataclass
class Stack:
    cluster: Cluster
    apps: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    requester: Actor
    worker: Actor
    project_id: str

    def replica_of(self, svc: str) -> ReadReplica:
        replica = self.apps[svc].state.database.replica
        assert replica is not None
        return replica

    async def replicas_usable(self, svcs: tuple[str, ...] = ("tasks", "payments")) -> bool:
        return all(self.replica_of(svc).usable for svc in svcs)

    async def replicas_bypassed(self) -> bool:
        return not any(self.replica_of(svc).usable for svc in ("tasks", "payments"))


@pytest.fixture(scope="module")
async def stack(cluster: Cluster) -> AsyncIterator[Stack]:
    """The apps on the pair, and a project with one approved (and paid) answer, so that every
    stale read has something to show."""
    mesh = ServiceMesh()
    async with AsyncExitStack() as exit_stack:
        apps = {}
        for svc in SERVICES:
            app = importlib.import_module(f"services.{svc}.app").create_app(_settings(svc, cluster))
            app.state.peer_transport = mesh
            mesh.add(svc, app)
            apps[svc] = app
        for app in apps.values():
            await exit_stack.enter_async_context(app.router.lifespan_context(app))
        clients = {
            svc: await exit_stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            )
            for svc, app in apps.items()
        }
        requester = await create_requester(clients["workers"])
        worker = await create_worker(clients["workers"])
        project_id = await _published_project(clients, requester, tasks=4)
        assignment_id = (await accept(clients["tasks"], worker, project_id)).json()["assignment_id"]
        got = await submit(clients["tasks"], worker, assignment_id, {"label": "cat"})
        assert got.status_code == 200, got.text
        assert (await approve(clients["tasks"], requester, assignment_id)).status_code == 200
        s = Stack(cluster, apps, clients, requester, worker, project_id)
        await _wait(lambda: _worker_available(s), "the payout delivered", within=15)
        await _wait(s.replicas_usable, "the replicas probed usable")
        yield s


async def _published_project(
    clients: dict[str, httpx.AsyncClient], requester: Actor, *, tasks: int
) -> str:
    tasks_client = clients["tasks"]
    resp = await tasks_client.post("/v1/projects", json=PROJECT_DEFAULTS, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    project = resp.json()
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": cat_tasks(tasks)},
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
    slot = cents(project["reward"]) + cents(project["fee_per_assignment"])
    await deposit(clients["payments"], requester, format_cents(tasks * slot))
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/publish", headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    return project["id"]


async def _worker_available(s: Stack) -> bool:
    resp = await s.clients["payments"].get("/v1/balance", headers=s.worker.headers)
    return resp.status_code == 200 and cents(resp.json()["available"]) > 0


async def _wait(
    condition: Callable[[], Awaitable[bool]], what: str, *, within: float = 10.0
) -> float:
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# --------------------------------------------------------------------------- the stale reads


@dataclass(frozen=True)
class StaleRead:
    """A route switched to StaleReadDbDep, and a table only its stale part reads (its
    authentication and owner check, on the primary, read others)."""

    svc: str
    path: str
    who: str  # "requester" | "worker"
    table: str

    def url(self, project_id: str) -> str:
        return self.path.format(project_id=project_id)


STALE_READS = (
    StaleRead("tasks", "/v1/work/projects", "worker", "projects"),
    StaleRead("tasks", "/v1/projects/{project_id}/results?format=csv", "requester", "tasks"),
    StaleRead("tasks", "/v1/projects/{project_id}/workers", "requester", "gold_stats"),
    StaleRead("payments", "/v1/earnings", "worker", "ledger_entries"),
    StaleRead("payments", "/v1/transactions", "requester", "ledger_entries"),
)


async def _get(s: Stack, read: StaleRead, project_id: str | None = None) -> httpx.Response:
    actor = s.requester if read.who == "requester" else s.worker
    return await s.clients[read.svc].get(
        read.url(project_id or s.project_id), headers=actor.headers
    )


async def _waiting_reads(url: str, table: str) -> list[str]:
    """application_name of each client backend of the test database waiting for a lock in a
    statement that names `table`."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = $1 AND wait_event_type = 'Lock' AND backend_type = 'client backend'"
            " AND strpos(query, $2) > 0",
            DB_NAME,
            table,
        )
    finally:
        await conn.close()
    return sorted(r["application_name"] for r in rows)


@contextlib.asynccontextmanager
async def table_locked(c: Cluster, table: str, *, replaying: bool = True) -> AsyncIterator[None]:
    """An ACCESS EXCLUSIVE lock on `table` held on the primary (and, `replaying`, by the
    replica's replay too) for the block; released, on both, when it ends."""
    locker = await asyncpg.connect(c.primary_url)
    flusher = await asyncpg.connect(c.primary_url)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        # The lock's WAL record goes out with the next flush: a commit makes one now.
        await flusher.fetchval("SELECT pg_current_xact_id()")
        if replaying:
            await _lock_replayed(c.replica_url, table)
        try:
            yield
        finally:
            await lock.rollback()
            await flusher.fetchval("SELECT pg_current_xact_id()")  # the release, to the replica
    finally:
        await locker.close()
        await flusher.close()


async def where_it_reads(s: Stack, read: StaleRead, *, replaying: bool = True) -> str:
    """'replica' or 'primary': where the route's read waits while the primary (and, through
    replay, the replica) holds an exclusive lock on its table. `replaying=False`: replay is
    paused, the lock cannot reach the replica (a read sent there would not wait at all)."""
    c = s.cluster
    found: dict[str, list[str]] = {}
    async with table_locked(c, read.table, replaying=replaying):
        if replaying:
            await _wait(lambda: s.replicas_usable((read.svc,)), "the replica usable")
        request = asyncio.create_task(_get(s, read))

        async def someone_waits() -> bool:
            found["replica"] = await _waiting_reads(c.replica_url, read.table)
            found["primary"] = await _waiting_reads(c.primary_url, read.table)
            assert not request.done(), request.result().text  # it must wait on one side
            return bool(found["replica"]) or read.svc in found["primary"]

        try:
            await _wait(someone_waits, f"{read.path} waiting for the lock", within=5)
        except BaseException:
            request.cancel()
            raise
    resp = await request
    assert resp.status_code == 200, resp.text
    if found["replica"]:
        # Only the route's replica pool waits there, and nothing of the service on the primary.
        assert found["replica"] == [f"{read.svc}-replica"], found
        assert read.svc not in found["primary"], found
        return "replica"
    return "primary"


async def _lock_replayed(replica_url: str, table: str) -> None:
    """Until the replica holds the primary's exclusive lock on `table` (its startup process
    takes it when it replays the lock's record)."""
    conn = await asyncpg.connect(replica_url)
    try:

        async def held() -> bool:
            return await conn.fetchval(
                "SELECT count(*) > 0 FROM pg_locks WHERE relation = $1::regclass"
                " AND mode = 'AccessExclusiveLock'",
                table,
            )

        await _wait(held, f"the lock on {table} replayed on the replica")
    finally:
        await conn.close()


async def test_stale_reads_run_on_the_replica(stack: Stack) -> None:
    await _wait(stack.replicas_usable, "the replicas usable")
    for read in STALE_READS:
        before = stack.replica_of(read.svc).reads_on_replica
        assert await where_it_reads(stack, read) == "replica", read
        assert stack.replica_of(read.svc).reads_on_replica > before
    # Nothing but the replica pools and their probes ever connects to the replica.
    conn = await asyncpg.connect(stack.cluster.replica_url)
    try:
        names = {
            r["application_name"]
            for r in await conn.fetch(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        }
    finally:
        await conn.close()
    assert {"tasks-replica", "payments-replica"} <= names, names
    assert all(name.endswith(("-replica", "-replica-probe")) for name in names), names


async def test_other_reads_stay_on_the_primary(stack: Stack) -> None:
    """The preview of a project (an ordinary ReadDbDep) waits on the primary's lock, not the
    replica's: only the listed routes moved."""
    await _wait(stack.replicas_usable, "the replicas usable")
    preview = StaleRead("tasks", "/v1/work/projects/{project_id}", "worker", "projects")
    assert await where_it_reads(stack, preview) == "primary"
    balance = StaleRead("payments", "/v1/balance", "worker", "ledger_accounts")
    assert await where_it_reads(stack, balance) == "primary"


async def test_background_reads_choose_as_the_routes_do(stack: Stack) -> None:
    """`Database.read(stale_ok=True)` and `.snapshot(stale_ok=True)` for jobs: the replica while
    it is usable, the primary once a read failed there, the replica again after the next
    probe; without `stale_ok`, always the primary."""
    database = stack.apps["tasks"].state.database
    replica = stack.replica_of("tasks")
    in_recovery = "SELECT pg_is_in_recovery()"
    await _wait(stack.replicas_usable, "the replicas usable")
    async with database.read(stale_ok=True) as db:
        assert isinstance(db, ReplicaReadDb) and await db.fetchval(in_recovery) is True
    async with database.snapshot(stale_ok=True) as db:
        assert await db.fetchval(in_recovery) is True
        assert await db.fetchval("SHOW transaction_isolation") == "repeatable read"
        assert await db.fetchval("SHOW transaction_read_only") == "on"
    async with database.read() as db:
        assert await db.fetchval(in_recovery) is False
    async with database.snapshot() as db:
        assert await db.fetchval(in_recovery) is False
        assert await db.fetchval("SHOW transaction_read_only") == "on"

    replica.failed(OSError("simulated: the replica went away"))
    async with database.read(stale_ok=True) as db:
        assert await db.fetchval(in_recovery) is False
    async with database.snapshot(stale_ok=True) as db:
        assert await db.fetchval(in_recovery) is False
    await _wait(stack.replicas_usable, "the next probe bringing the replica back", within=3)
    async with database.read(stale_ok=True) as db:
        assert await db.fetchval(in_recovery) is True


@pytest.mark.parametrize(
    "read", [STALE_READS[4], STALE_READS[1]], ids=["statement (transactions)", "export snapshot"]
)
async def test_a_read_cut_off_on_the_replica_finishes_on_the_primary(
    stack: Stack, read: StaleRead
) -> None:
    """The replica's backend is terminated while the read waits there: the route answers 200
    all the same, from the primary (a statement is run again there; an export that has sent
    nothing starts over there), and the replica is marked down until the next probe."""
    s = stack
    c = s.cluster
    await _wait(s.replicas_usable, "the replicas usable")
    expected = await _get(s, read)
    replica = s.replica_of(read.svc)
    failovers = replica.failovers
    async with table_locked(c, read.table):
        await _wait(lambda: s.replicas_usable((read.svc,)), "the replica usable")
        request = asyncio.create_task(_get(s, read))
        try:

            async def waits_on(url: str) -> bool:
                return f"{read.svc}-replica" in await _waiting_reads(url, read.table)

            await _wait(lambda: waits_on(c.replica_url), "the read waiting on the replica")
            conn = await asyncpg.connect(c.replica_url)
            try:
                cut = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    f"{read.svc}-replica",
                )
            finally:
                await conn.close()
            assert cut == 1

            async def waits_on_primary() -> bool:
                return read.svc in await _waiting_reads(c.primary_url, read.table)

            await _wait(waits_on_primary, "the read going on, on the primary")
        except BaseException:
            request.cancel()
            raise
    resp = await request
    assert resp.status_code == 200, resp.text
    assert resp.content == expected.content
    assert replica.failovers == failovers + 1
    await _wait(s.replicas_usable, "the replica back after the next probe", within=3)


# --------------------------------------------------------------------------- a lagging replica


async def test_money_and_claims_use_the_primary_and_a_lagging_replica_is_bypassed(
    stack: Stack,
) -> None:
    s = stack
    await _wait(s.replicas_usable, "the replicas usable")
    replica = await asyncpg.connect(s.cluster.replica_url)
    try:
        await replica.execute("SELECT pg_wal_replay_pause()")
        try:
            # Money and claims, all decided on data the paused replica does not have: a new
            # requester, its deposit, a project published on that deposit, a worker's claim,
            # submit and approval. Any of them reading the replica would fail (404, 401, 402).
            requester = await create_requester(s.clients["workers"])
            worker = await create_worker(s.clients["workers"])
            project_id = await _published_project(s.clients, requester, tasks=2)
            got = await accept(s.clients["tasks"], worker, project_id)
            assert got.status_code == 201, got.text
            assignment_id = got.json()["assignment_id"]
            got = await submit(s.clients["tasks"], worker, assignment_id, {"label": "dog"})
            assert got.status_code == 200, got.text
            assert (await approve(s.clients["tasks"], requester, assignment_id)).status_code == 200
            paid = Stack(s.cluster, s.apps, s.clients, requester, worker, project_id)
            await _wait(lambda: _worker_available(paid), "the payout delivered")
            on_replica = await replica.fetchval(
                "SELECT count(*) FROM projects WHERE id = $1", project_id
            )
            assert on_replica == 0, "replay was paused: the replica must not know the project"

            # The replica now lags (WAL received, not replayed): the probes say so within the
            # limit plus a period or two, and the stale reads go to the primary.
            took = await _wait(s.replicas_bypassed, "the lag noticed by both services")
            for svc in ("tasks", "payments"):
                state = s.replica_of(svc).state
                assert state.lag_seconds is not None and state.lag_seconds > MAX_LAG_SECONDS
                assert "over" in state.reason, state
            before = s.replica_of("tasks").reads_on_primary
            listing = await s.clients["tasks"].get("/v1/work/projects", headers=worker.headers)
            assert listing.status_code == 200, listing.text
            assert project_id in {p["id"] for p in listing.json()["items"]}
            export = await s.clients["tasks"].get(
                f"/v1/projects/{project_id}/results", headers=requester.headers
            )
            assert export.status_code == 200 and len(export.json()) == 2, export.text
            stats = await s.clients["tasks"].get(
                f"/v1/projects/{project_id}/workers", headers=requester.headers
            )
            assert [w["worker_id"] for w in stats.json()["items"]] == [worker.id], stats.text
            history = await s.clients["payments"].get("/v1/transactions", headers=requester.headers)
            assert history.status_code == 200 and history.json()["items"], history.text
            earnings = await s.clients["payments"].get("/v1/earnings", headers=worker.headers)
            assert cents(earnings.json()["total"]) > 0, earnings.text
            assert s.replica_of("tasks").reads_on_primary >= before + 3
            assert await where_it_reads(paid, STALE_READS[-1], replaying=False) == "primary"
        finally:
            await replica.execute("SELECT pg_wal_replay_resume()")
        back = await _wait(s.replicas_usable, "the replicas caught up and usable")
        assert await replica.fetchval("SELECT count(*) FROM projects WHERE id = $1", project_id)
    finally:
        await replica.close()
    print(f"\nlag noticed after {took:.2f} s; usable again {back:.2f} s after resuming")


# --------------------------------------------------------------------------- replica down


async def test_replica_stopped_under_load_then_restarted(stack: Stack) -> None:
    s = stack
    await _wait(s.replicas_usable, "the replicas usable")
    statuses: list[int] = []
    stop = asyncio.Event()

    async def reader(offset: int) -> None:
        i = offset
        while not stop.is_set():
            resp = await _get(s, STALE_READS[i % len(STALE_READS)])
            statuses.append(resp.status_code)
            assert resp.status_code == 200, resp.text
            i += 1

    counts = {svc: s.replica_of(svc).reads_on_replica for svc in ("tasks", "payments")}
    readers = [asyncio.create_task(reader(n)) for n in range(4)]
    try:
        await asyncio.sleep(0.7)
        served_before_stop = len(statuses)
        await asyncio.to_thread(s.cluster.replica.stop)
        stopped_at = len(statuses)
        await _wait(s.replicas_bypassed, "both services seeing the replica down", within=5)
        for svc in ("tasks", "payments"):
            state = s.replica_of(svc).state
            assert state.reason.startswith(("unreachable", "read failed")), state
        await asyncio.sleep(0.7)  # reads go on, on the primary
        served_while_down = len(statuses) - stopped_at

        # A replica believed up but unreachable (its probe paused here, so the state stays as
        # set): the read that finds out fails over at once and marks it down.
        tasks_replica = s.replica_of("tasks")
        await tasks_replica.stop_probe()
        tasks_replica._set(ReplicaState(True, 0.0, "believed up", time.monotonic()))
        failovers = tasks_replica.failovers
        got = await _get(s, STALE_READS[0])
        assert got.status_code == 200, got.text
        assert tasks_replica.state.reason.startswith("read failed"), tasks_replica.state
        assert not tasks_replica.usable and tasks_replica.failovers > failovers
        tasks_replica.start_probe()
        await asyncio.to_thread(s.cluster.replica.start)
        back = await _wait(s.replicas_usable, "the replicas usable after the restart")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert not [o for o in outcomes if o is not None], outcomes
    assert set(statuses) == {200}, sorted(set(statuses))
    assert served_before_stop > 0 and served_while_down > 0, (served_before_stop, served_while_down)
    for svc, before in counts.items():
        assert s.replica_of(svc).reads_on_replica > before
    # Back on the replica once it is up again.
    assert await where_it_reads(s, STALE_READS[0]) == "replica"
    assert await where_it_reads(s, STALE_READS[-1]) == "replica"
    print(
        f"\n{len(statuses)} reads, all 200: {served_before_stop} before the stop,"
        f" {served_while_down} while it was down; usable {back:.2f} s after the restart;"
        f" failovers tasks {s.replica_of('tasks').failovers},"
        f" payments {s.replica_of('payments').failovers}"
    )
