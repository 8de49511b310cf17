"""Two replicas of each service behind the real nginx, rendered from the project's gateway
template (devtools.gateway, the same code as `manage.py run --replicas N`).

The fixtures here override the suite's client fixtures for the tests collected under
tests/gateway/: `tasks_client`, `workers_client`, `payments_client` and `live_services` talk to
the gateway, and `db` is a pool on the stack's own database. So existing test bodies (imported
into tests/gateway/test_replicas.py, not copied) run unchanged through nginx and six
processes: each request may land on either replica of its service (tasks: by the caller's key).

Inter-service calls do not go through the public gateway (it never routes /internal/*): replica
i calls replica i of each peer directly (devtools.gateway.replica_env).

The stack has a database of its own (created and migrated here, dropped at the end), so what
the replicas' timers and outbox did is theirs alone and can be counted exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import asyncpg
import httpx
import pytest

from devtools.cli import uvicorn_argv
from devtools.gateway import (
    INSTALL_HINT,
    LocalGateway,
    Replica,
    find_nginx,
    free_port,
    replica_env,
    replica_layout,
)
from tests.conftest import ROOT, SERVICES, service_env
from tests.reliability.conftest import FAST_ENV, create_migrated_database, drop_database

REPLICAS = 2
ACCOUNT_LIMIT_PER_HOUR = 120
"""The workers' per-account limit: low enough for tests/gateway/test_replicas.py to spend it,
far above what any other test here does with one account (each test makes its own)."""
STACK_ENV = {
    "WORKERS_RATE_LIMIT_PER_ACCOUNT": f"{ACCOUNT_LIMIT_PER_HOUR}/hour",
    **FAST_ENV,
    # Timers act as soon as an item falls due, in small batches, so the two tasks replicas
    # interleave (tests/gateway/test_replicas.py counts what each did).
    "TASKS_TIMERS_GRACE_SECONDS": "0",
    "TASKS_TIMERS_POLL_INTERVAL_SECONDS": "0.05",
    "TASKS_TIMERS_BATCH_SIZE": "5",
    # Access lines (with the request id): which replica served a request.
    **{f"{svc.upper()}_LOG_LEVEL": "INFO" for svc in SERVICES},
    # Six processes next to the suite's own on one server: smaller pools.
    **{f"{svc.upper()}_DB_POOL_SIZE": "8" for svc in SERVICES},
    **{f"{svc.upper()}_DB_DRIVER_POOL_SIZE": "8" for svc in SERVICES},
}


def require_nginx() -> None:
    """Skip (locally) or fail (in CI, where .ci/run installs it) when nginx is missing."""
    if find_nginx() is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)


class GatewayStack:
    """N uvicorn processes per service, nginx in front; `urls` are the gateway's public ports
    (one per service, as `manage.py run --replicas` listens), `replica_urls` each process's."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        replicas: int = REPLICAS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.layout = replica_layout(replicas)
        self.public_ports = {svc: free_port() for svc in SERVICES}
        self.urls = {svc: f"http://127.0.0.1:{port}" for svc, port in self.public_ports.items()}
        self.replica_urls = {
            svc: [f"http://127.0.0.1:{r.port}" for r in group] for svc, group in self.layout.items()
        }
        # The first replica of each service: for /internal/* (never routed by the gateway).
        self.internal_urls = {svc: urls[0] for svc, urls in self.replica_urls.items()}
        base = {**os.environ, **service_env(database_url, self.internal_urls), **STACK_ENV}
        base.update(env or {})
        self.env = base
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.gateway = LocalGateway(
            workdir / "nginx",
            listen=[f"127.0.0.1:{port}" for port in self.public_ports.values()],
            layout=self.layout,
        )

    def replicas(self) -> list[Replica]:
        return [r for group in self.layout.values() for r in group]

    def start(self) -> None:
        for replica in self.replicas():
            log = open(self.workdir / f"{replica.name}.log", "ab")
            self.procs[replica.name] = subprocess.Popen(
                [sys.executable, *uvicorn_argv(replica.service, "127.0.0.1", replica.port)],
                cwd=ROOT,
                env=replica_env(self.env, replica, self.layout, "127.0.0.1"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        self.gateway.start()
        for replica in self.replicas():
            self._wait_healthy(replica)
        self.gateway.wait_ready(self.urls["tasks"])

    def _wait_healthy(self, replica: Replica, timeout: float = 120.0) -> None:
        url = f"http://127.0.0.1:{replica.port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[replica.name].poll() is not None:
                raise RuntimeError(f"{replica.name} exited:\n{self.log(replica.name)[-3000:]}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{replica.name} not healthy:\n{self.log(replica.name)[-3000:]}")

    def served_by(self, request_id: str) -> list[str]:
        """The replicas whose access log has this request id."""
        needle = f'"request_id":"{request_id}"'
        return [name for name in self.procs if needle in self.log(name)]

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.gateway.stop()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


@pytest.fixture(scope="session")
def gateway_stack(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayStack]:
    require_nginx()
    url = create_migrated_database(postgres_server)
    stack = GatewayStack(url, tmp_path_factory.mktemp("gateway"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        drop_database(url)


class InternalToReplica(httpx.AsyncBaseTransport):
    """The public API through the gateway; the harness's own /internal/* calls (ledger check,
    outbox stats), which the gateway answers 404, straight to one replica of the service."""

    def __init__(self, replica_url: str) -> None:
        self.replica = httpx.URL(replica_url)
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/internal/"):
            request.url = request.url.copy_with(host=self.replica.host, port=self.replica.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(stack: GatewayStack, svc: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.urls[svc],
        timeout=30,
        transport=InternalToReplica(stack.internal_urls[svc]),
    )


# The suite's fixtures, overridden for the tests under tests/gateway/: the same names, so the
# imported test bodies run through nginx and the replicas unchanged.


@pytest.fixture(scope="session")
async def tasks_client(gateway_stack: GatewayStack) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(gateway_stack, "tasks") as client:
        yield client


@pytest.fixture(scope="session")
async def workers_client(gateway_stack: GatewayStack) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(gateway_stack, "workers") as client:
        yield client


@pytest.fixture(scope="session")
async def payments_client(gateway_stack: GatewayStack) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(gateway_stack, "payments") as client:
        yield client


@pytest.fixture(scope="session")
def live_services(gateway_stack: GatewayStack) -> GatewayStack:
    return gateway_stack


@pytest.fixture(scope="session")
async def db(gateway_stack: GatewayStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(gateway_stack.database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()
