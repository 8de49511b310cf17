"""Test harness: a real Postgres, a throwaway database per run, the three services wired together.

- `database_url`: the embedded Postgres (or $DATABASE_URL's server) with a fresh database per test
  process (pytest-xdist workers each get their own), migrated once with alembic, dropped at the
  end. The embedded server is started once per run (`pytest_configure`).
- `apps`: the three apps in this process (lifespans entered: pools, listeners, the outbox and the
  timers run), calling each other through `ServiceMesh`, an httpx transport that hands each
  internal call to the peer app over ASGI. No process starts, so `pytest tests/services/...`
  takes seconds. `mesh.stop("payments")` makes a peer unreachable (connection refused) for the
  tests of what happens while it is down.
- `tasks_client`, `workers_client`, `payments_client`: httpx clients on those apps.
- `live_services`: the three services as separate uvicorn processes on free ports, calling each
  other over real HTTP, started only for the tests that ask for it: reliability, end-to-end,
  races across processes, and the bench smoke.
Tests build their own accounts, so they share the database without stepping on each other.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
SERVICES = ("tasks", "workers", "payments")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_EMBEDDED: list = []  # the embedded server this process started (pytest_configure), if any


def pytest_configure(config: pytest.Config) -> None:
    """Without $DATABASE_URL, start the embedded Postgres once, in the process that runs the
    session (or, under pytest-xdist, in the controller), and hand its URL to the test
    processes through $DATABASE_URL: every worker uses the one server, which stops only when
    the whole run ends (a worker that finished first must not stop it under the others)."""
    if os.environ.get("DATABASE_URL") or hasattr(config, "workerinput"):
        return
    from devtools.embedded_pg import EmbeddedPostgres

    # Two test processes at once, each with the three apps' pools (general, hot, rate-limit)
    # filled by the race tests, plus live service processes and gateway replicas: more than
    # the 300 connections `manage.py run` needs.
    pg = EmbeddedPostgres(
        ROOT / ".data" / "test-postgres", fast=True, settings={"max_connections": "1000"}
    )
    os.environ["DATABASE_URL"] = pg.start()
    _EMBEDDED.append(pg)


def pytest_unconfigure(config: pytest.Config) -> None:
    for pg in _EMBEDDED:
        pg.stop()
        os.environ.pop("DATABASE_URL", None)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the Postgres server (maintenance database): $DATABASE_URL's, or the embedded one
    pytest_configure started. Each test process makes its own throwaway database on it."""
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    name = f"test_{int(time.time())}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(with_database(postgres_server, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = with_database(postgres_server, name)
    migrated = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        pytest.exit(f"alembic upgrade head failed:\n{migrated.stderr[-4000:]}", returncode=1)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def service_env(database_url: str, urls: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for svc in SERVICES:
        p = svc.upper() + "_"
        env[p + "DATABASE_URL"] = database_url
        env[p + "INTERNAL_TOKEN"] = INTERNAL_TOKEN
        env[p + "LOG_LEVEL"] = "WARNING"
        # The suite signs up thousands of accounts from one address; tests of the limits
        # themselves build apps with low limits.
        env[p + "RATE_LIMIT_SIGNUP"] = "100000/minute"
        env[p + "RATE_LIMIT_PER_KEY"] = "100000/minute"
        for peer in SERVICES:
            env[p + peer.upper() + "_URL"] = urls[peer]
    return env


class LiveServices:
    """The three services as real processes; fault tests may kill and restart one."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.ports = {svc: free_port() for svc in SERVICES}
        self.urls = {svc: f"http://127.0.0.1:{port}" for svc, port in self.ports.items()}
        self.internal_urls = self.urls  # behind a gateway (tests/gateway/) they differ
        self.env = {**os.environ, **service_env(database_url, self.urls)}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, svc: str) -> None:
        log = open(self.log_dir / f"{svc}.log", "ab")
        self.procs[svc] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{svc}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[svc]),
                "--no-access-log",
                "--no-proxy-headers",  # as deployed: the app judges X-Forwarded-For
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, svc: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[svc].poll() is not None:
                raise RuntimeError(f"{svc} exited:\n{(self.log_dir / f'{svc}.log').read_text()}")
            try:
                if httpx.get(self.urls[svc] + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"{svc} did not become healthy:\n{(self.log_dir / f'{svc}.log').read_text()}"
        )

    def stop(self, svc: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(svc, None)
        if proc is None:
            return
        proc.kill() if kill else proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def live_services(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServices]:
    live = LiveServices(database_url, tmp_path_factory.mktemp("service-logs"))
    for svc in SERVICES:
        live.start(svc)
    try:
        for svc in SERVICES:
            live.wait_healthy(svc)
        yield live
    finally:
        for svc in list(live.procs):
            live.stop(svc)


def make_settings(svc: str, database_url: str, urls: dict[str, str]):
    import importlib

    module = importlib.import_module(f"services.{svc}.settings")
    return module.Settings(
        database_url=database_url,
        internal_token=INTERNAL_TOKEN,
        tasks_url=urls["tasks"],
        workers_url=urls["workers"],
        payments_url=urls["payments"],
        log_level="WARNING",
        rate_limit_signup="100000/minute",
        rate_limit_per_key="100000/minute",
    )


MESH_URLS = {svc: f"http://{svc}.mesh" for svc in SERVICES}


class ServiceMesh(httpx.AsyncBaseTransport):
    """Routes each service's internal calls to the peer app in this process (by host name).

    A stopped peer refuses connections exactly as a dead process's port does (httpx.ConnectError),
    so the callers' retry and 503 paths run as they would in production. App exceptions become
    500 responses, as a real server would answer.
    """

    def __init__(self) -> None:
        self.transports: dict[str, httpx.ASGITransport] = {}
        self.stopped: set[str] = set()

    def add(self, svc: str, app: Any) -> None:
        self.transports[f"{svc}.mesh"] = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def stop(self, svc: str) -> None:
        self.stopped.add(f"{svc}.mesh")

    def start(self, svc: str) -> None:
        self.stopped.discard(f"{svc}.mesh")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.stopped or host not in self.transports:
            raise httpx.ConnectError(f"connection refused: {host}", request=request)
        return await self.transports[host].handle_async_request(request)


@pytest.fixture(scope="session")
def mesh() -> ServiceMesh:
    return ServiceMesh()


@pytest.fixture(scope="session")
async def apps(database_url: str, mesh: ServiceMesh) -> AsyncIterator[dict]:
    """The three apps in-process (lifespans entered), calling each other through the mesh."""
    import importlib

    async with AsyncExitStack() as stack:
        out = {}
        for svc in SERVICES:
            app = importlib.import_module(f"services.{svc}.app").create_app(
                make_settings(svc, database_url, MESH_URLS)
            )
            app.state.peer_transport = mesh
            mesh.add(svc, app)
            out[svc] = app
        for app in out.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield out


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture(scope="session")
async def tasks_client(apps: dict) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(apps["tasks"]) as c:
        yield c


@pytest.fixture(scope="session")
async def workers_client(apps: dict) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(apps["workers"]) as c:
        yield c


@pytest.fixture(scope="session")
async def payments_client(apps: dict) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(apps["payments"]) as c:
        yield c


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A raw asyncpg pool for assertions on what the database holds."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()
