"""A private database and the three apps on it, for the metrics and tracing tests.

Their gauges describe the whole database (the outbox backlog, the timers' lag, the ledger
check) and their traces follow one payout through the outbox, so they need a database no other
process delivers from or writes to: the session's in-process apps and live services share
theirs. A fresh database costs about a second (alembic on an empty schema).
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MESH_URLS, ROOT, SERVICES, ServiceMesh, make_settings, with_database


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"test_obs_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(with_database(server_url, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = with_database(server_url, name)
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
        )
        assert migrated.returncode == 0, migrated.stderr[-4000:]
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class IsolatedMesh(ServiceMesh):
    """The mesh, with each call handled in an empty context, as a peer process would: nothing
    of the caller's context (its current span) leaks into the peer except what the request
    carries (the `traceparent` header)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(
            super().handle_async_request(request), context=contextvars.Context()
        )


class _Port(httpx.AsyncBaseTransport):
    """One app's own way into the mesh (as each process has its own network stack): the httpx
    instrumentation wraps the transport of the client it instruments, and a transport shared
    by the three clients would be wrapped three times."""

    def __init__(self, mesh: ServiceMesh) -> None:
        self.mesh = mesh

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.mesh.handle_async_request(request)


@dataclass
class Stack:
    apps: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    mesh: ServiceMesh

    @property
    def tasks(self) -> httpx.AsyncClient:
        return self.clients["tasks"]

    @property
    def workers(self) -> httpx.AsyncClient:
        return self.clients["workers"]

    @property
    def payments(self) -> httpx.AsyncClient:
        return self.clients["payments"]


@asynccontextmanager
async def running_stack(database_url: str, **overrides: Any) -> AsyncIterator[Stack]:
    """The three apps on `database_url`, lifespans entered, on a mesh of their own; `overrides`
    replace settings of all three (each takes the ones it knows)."""
    mesh = IsolatedMesh()
    async with AsyncExitStack() as stack:
        apps: dict[str, Any] = {}
        for svc in SERVICES:
            settings = make_settings(svc, database_url, MESH_URLS)
            known = {k: v for k, v in overrides.items() if k in type(settings).model_fields}
            app = importlib.import_module(f"services.{svc}.app").create_app(
                settings.model_copy(update=known)
            )
            app.state.peer_transport = _Port(mesh)
            mesh.add(svc, app)
            apps[svc] = app
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        clients = {
            svc: await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            )
            for svc, app in apps.items()
        }
        yield Stack(apps=apps, clients=clients, mesh=mesh)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """{(sample name, labels): value} of an exposition text."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value, 0 when absent (a labelled child not created yet counts nothing)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    return parse_samples(resp.text)
