"""The kit across services: health, internal calls over real HTTP, sessions, problem+json."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from shared.db import driver_connection
from shared.errors import NotFound
from tests.conftest import INTERNAL_TOKEN, MESH_URLS, LiveServices
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import accept, cat_tasks, published_project, workers


async def test_every_service_is_healthy_and_ready(live_services: LiveServices) -> None:
    async with httpx.AsyncClient() as client:
        for svc, url in live_services.urls.items():
            assert (await client.get(url + "/healthz")).json() == {"status": "ok"}, svc
            assert (await client.get(url + "/readyz")).json() == {"status": "ready"}, svc
            spec = (await client.get(url + "/openapi.json")).json()
            assert spec["info"]["title"].lower().find(svc) >= 0
            assert (await client.get(url + "/docs")).status_code == 200


async def test_internal_call_crosses_real_http_with_the_token(
    apps: dict, workers_client: httpx.AsyncClient, live_services: LiveServices
) -> None:
    worker = await create_worker(workers_client)
    # in-process, the tasks app's client for its workers peer goes through the test mesh
    peer = apps["tasks"].state.peers["workers"]
    assert peer.base_url == MESH_URLS["workers"]
    account = await peer.get(f"/internal/accounts/{worker.id}")
    assert account["id"] == worker.id and account["kind"] == "worker"

    # and between real processes over real HTTP, the token is what opens /internal/*

    url = f"{live_services.urls['workers']}/internal/accounts/{worker.id}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 401
        wrong = await client.get(url, headers={"X-Internal-Token": "x" * len(INTERNAL_TOKEN)})
        assert wrong.status_code == 401 and wrong.json()["code"] == "internal_token_required"
        # an API key is never enough for /internal/*
        as_key = await client.get(url, headers=worker.headers)
        assert as_key.status_code == 401
        ok = await client.get(url, headers={"X-Internal-Token": INTERNAL_TOKEN})
        assert ok.status_code == 200


async def test_peer_errors_keep_status_and_code(apps: dict) -> None:
    peer = apps["payments"].state.peers["workers"]
    try:
        await peer.get("/internal/accounts/NOPE")
    except NotFound as err:
        assert err.code == "not_found"
    else:
        raise AssertionError("expected NotFound")


async def test_request_id_is_echoed_and_generated(workers_client: httpx.AsyncClient) -> None:
    resp = await workers_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = (await workers_client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 26


async def test_unknown_route_is_problem_json(tasks_client: httpx.AsyncClient) -> None:
    resp = await tasks_client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "not_found"


async def test_driver_connection_runs_inside_the_request_transaction(apps: dict, db) -> None:
    """Raw asyncpg statements on hot paths must roll back with the session."""
    sessionmaker = apps["tasks"].state.sessionmaker
    marker = "rollback-probe"
    async with sessionmaker() as session:
        conn = await driver_connection(session)
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email) VALUES ($1, 'worker', 'x', $2)",
            marker,
            f"{marker}@example.com",
        )
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE id = $1", marker) == 1
        await session.rollback()
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE id = $1", marker) == 0
    # and commits with it
    async with sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        conn = await driver_connection(session)
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email) VALUES ($1, 'worker', 'x', $2)",
            marker,
            f"{marker}@example.com",
        )
        await session.commit()
    assert await db.fetchval("DELETE FROM accounts WHERE id = $1 RETURNING 1", marker) == 1


async def test_a_key_from_the_workers_service_works_on_every_service_until_revoked(
    live_services: LiveServices,
) -> None:
    """Over real HTTP between real processes: sign up on workers, use the key on tasks and
    payments, revoke it on workers, and it stops working on the other two as soon as the
    revocation's notification arrives there (tests/shared/test_api_key_cache.py)."""
    urls = live_services.urls
    async with httpx.AsyncClient(timeout=10) as client:
        signup = await client.post(
            urls["workers"] + "/v1/accounts",
            json={"kind": "worker", "name": "Roamer", "email": f"roamer-{id(client)}@example.com"},
        )
        assert signup.status_code == 201
        key = signup.json()["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        second = (
            await client.post(urls["workers"] + "/v1/accounts/me/api-keys", headers=headers)
        ).json()
        calls = [
            ("tasks", "/v1/work/projects"),
            ("payments", "/v1/balance"),
            ("tasks", "/v1/workers/me/assignments"),
            ("payments", "/v1/earnings"),
        ]
        other = {"Authorization": f"Bearer {second['api_key']}"}
        for svc, path in calls:
            for h in (headers, other):
                resp = await client.get(urls[svc] + path, headers=h)
                assert resp.status_code == 200, (svc, path, resp.text)
        revoked = await client.delete(
            urls["workers"] + f"/v1/accounts/me/api-keys/{second['id']}", headers=headers
        )
        assert revoked.status_code == 204
        for svc, path in calls:
            deadline = time.monotonic() + 5
            while (resp := await client.get(urls[svc] + path, headers=other)).status_code == 200:
                assert time.monotonic() < deadline, (svc, path)
                await asyncio.sleep(0.001)
            assert resp.status_code == 401, (svc, path)
            assert resp.json()["code"] == "unauthorized"
            still = await client.get(urls[svc] + path, headers=headers)
            assert still.status_code == 200, (svc, path)


async def test_connections_that_died_in_the_pool_are_replaced_without_a_failed_request(
    apps: dict, workers_client: httpx.AsyncClient, db
) -> None:
    """The pool does not ping before each request (three round trips); a connection that the
    server closed while it sat in the pool (Postgres restarted, the backend was terminated) is
    replaced at checkout, so the next requests all succeed."""
    worker = await create_worker(workers_client)

    async def profile() -> httpx.Response:
        return await workers_client.get("/v1/workers/me", headers=worker.headers)

    assert all(r.status_code == 200 for r in await asyncio.gather(*(profile() for _ in range(12))))
    sessionmaker = apps["workers"].state.sessionmaker
    sessions = [sessionmaker() for _ in range(6)]
    pids = [
        await (await driver_connection(s)).fetchval("SELECT pg_backend_pid()") for s in sessions
    ]
    for s in sessions:
        await s.close()
    await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    for _ in range(100):
        gone = await db.fetchval(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        )
        if gone:
            break
        await asyncio.sleep(0.02)
    answers = await asyncio.gather(*(profile() for _ in range(12)))
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers]


async def test_driver_pool_connections_that_died_are_replaced_without_a_failed_request(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """The same for the hot paths' asyncpg pool (shared.hot_path): accepts right after the
    server closed every pooled connection all succeed."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(40)
    )
    crowd = await workers(workers_client, 12)
    pool = apps["tasks"].state.driver_pool
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


async def test_a_connection_closed_under_a_hot_path_request_answers_503(apps: dict, db) -> None:
    """Postgres going away in the middle of a request on the driver pool: the driver's
    "connection is closed" becomes 503 dependency_unavailable (retry), not a 500."""
    from types import SimpleNamespace

    from shared.db import request_connection
    from shared.errors import DependencyUnavailable

    held = request_connection(SimpleNamespace(app=apps["tasks"]))  # type: ignore[arg-type]
    conn = await held.__aenter__()
    await db.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    for _ in range(250):
        try:
            if conn.is_closed():
                break
        except asyncpg.InterfaceError:  # the pool took it back already
            break
        await asyncio.sleep(0.02)
    with pytest.raises(DependencyUnavailable):
        try:
            await conn.fetchval("SELECT 1")
        except Exception as exc:  # what the route would have raised, leaving the `async with`
            await held.__aexit__(type(exc), exc, exc.__traceback__)
