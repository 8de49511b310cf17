"""Fault-test harness: a private database and private service processes per test.

The session's services (tests/conftest.py) are shared by every other test, so nothing here kills
them. Each fault test gets its own freshly migrated database on the session's Postgres server
(or, for the Postgres restart, a Postgres server of its own) and its own processes, started with
the same environment as the session's plus the test's settings. Counting what the timers did
across replicas is then exact: no other process works on that database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, ROOT, LiveServices, free_port, with_database

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}

# Fast retries and timers so a fault test needs seconds, not minutes; the mechanisms under test
# are the production ones (only their periods are shorter).
FAST_ENV: dict[str, str] = {
    "TASKS_OUTBOX_POLL_INTERVAL_SECONDS": "0.2",
    "TASKS_OUTBOX_BACKOFF_BASE_SECONDS": "0.2",
    "TASKS_OUTBOX_BACKOFF_CAP_SECONDS": "1",
    "TASKS_OUTBOX_LEASE_SECONDS": "5",
    "TASKS_TIMERS_POLL_INTERVAL_SECONDS": "0.1",
    "TASKS_TIMERS_ERROR_BACKOFF_SECONDS": "0.1",
    "TASKS_TIMERS_ERROR_BACKOFF_CAP_SECONDS": "0.5",
    "TASKS_HTTP_TIMEOUT_SECONDS": "3",
}


def create_migrated_database(server_url: str) -> str:
    """A new database on `server_url`, migrated to head; returns its URL."""
    name = f"fault_{int(time.time())}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(with_database(server_url, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    url = with_database(server_url, name)
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return url


def drop_database(url: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(with_database(url, "postgres"))
        try:
            name = url.rsplit("/", 1)[1]
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


class Stack(LiveServices):
    """The three services (plus any extra tasks replicas) as processes on one database."""

    def __init__(self, database_url: str, log_dir: Path, env: dict[str, str] | None = None):
        super().__init__(database_url, log_dir)
        self.env.update(FAST_ENV)
        self.env.update(env or {})
        self.exit_codes: dict[str, int | None] = {}

    def add_replica(self, name: str) -> None:
        """Another tasks process (`name`, e.g. "tasks-2") on its own port, same settings."""
        self.ports[name] = free_port()
        self.urls[name] = f"http://127.0.0.1:{self.ports[name]}"

    def start(self, svc: str) -> None:
        module = "tasks" if svc.startswith("tasks") else svc
        log = open(self.log_dir / f"{svc}.log", "ab")
        self.procs[svc] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{module}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[svc]),
                "--no-access-log",
                "--no-proxy-headers",
                "--timeout-graceful-shutdown",
                "20",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, svc: str, *, kill: bool = False) -> None:
        proc = self.procs.get(svc)
        super().stop(svc, kill=kill)
        if proc is not None:
            self.exit_codes[svc] = proc.returncode

    def log(self, svc: str) -> str:
        return (self.log_dir / f"{svc}.log").read_text(errors="replace")

    def start_all(self, *names: str) -> None:
        for name in names:
            self.start(name)
        for name in names:
            self.wait_healthy(name)

    def client(self, svc: str, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.urls[svc],
            timeout=kw.pop("timeout", 30.0),
            limits=httpx.Limits(max_connections=kw.pop("max_connections", 100)),
            **kw,
        )


@pytest.fixture
def fault_database(postgres_server: str) -> Iterator[str]:
    url = create_migrated_database(postgres_server)
    yield url
    drop_database(url)


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator:
    """`make_stack(database_url, env)`: a Stack whose processes are stopped after the test."""
    stacks: list[Stack] = []

    def make(database_url: str, env: dict[str, str] | None = None) -> Stack:
        log_dir = tmp_path / f"logs-{len(stacks)}"
        log_dir.mkdir()
        stack = Stack(database_url, log_dir, env)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for svc in list(stack.procs):
            stack.stop(svc, kill=True)


class Clients:
    """httpx clients on a stack's live processes, named like the session fixtures."""

    def __init__(self, stack: Stack) -> None:
        self.tasks = stack.client("tasks")
        self.workers = stack.client("workers")
        self.payments = stack.client("payments")

    async def aclose(self) -> None:
        for client in (self.tasks, self.workers, self.payments):
            await client.aclose()


@pytest.fixture
async def clients_for() -> AsyncIterator:
    opened: list[Clients] = []

    def make(stack: Stack) -> Clients:
        clients = Clients(stack)
        opened.append(clients)
        return clients

    yield make
    for clients in opened:
        await clients.aclose()
