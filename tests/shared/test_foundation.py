"""The kit across services: health, internal calls over real HTTP, sessions, problem+json."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from shared.errors import NotFound
from tests.conftest import INTERNAL_TOKEN, MESH_URLS, LiveServices
from tests.fixtures.accounts import create_worker


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


# --------------------------------------------------------------------------- hostile transport


@pytest.mark.parametrize("host", ["testserver", "evil.example"])
async def test_a_trailing_slash_is_a_404_problem_never_a_redirect(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    host: str,
) -> None:
    """Starlette's trailing-slash redirect built its Location from the Host header (an open
    redirect through a misrouted Host): redirects are off, the path is simply not found."""
    for client, path in (
        (tasks_client, "/v1/projects/"),
        (tasks_client, "/v1/work/projects/"),
        (workers_client, "/v1/accounts/me/"),
        (workers_client, "/v1/blocks/"),
        (payments_client, "/v1/transactions/"),
        (payments_client, "/v1/deposits/"),
    ):
        for method in ("GET", "POST"):
            resp = await client.request(
                method, path, headers={"Host": host}, follow_redirects=False
            )
            assert resp.status_code == 404, (method, path, resp.status_code, resp.headers)
            assert "location" not in resp.headers
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert resp.json()["code"] == "not_found"
            assert "trailing slash" in resp.json()["detail"]


def _headers_of(total_bytes: int) -> dict[str, str]:
    return {f"X-Pad-{i}": "a" * 1000 for i in range(total_bytes // 1000)}


async def test_request_headers_over_16_kib_are_431(workers_client: httpx.AsyncClient) -> None:
    ok = await workers_client.get("/healthz", headers=_headers_of(12_000))
    assert ok.status_code == 200
    for headers in (_headers_of(17_000), {"X-Big": "a" * 17_000}):
        resp = await workers_client.get("/healthz", headers=headers)
        assert resp.status_code == 431, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["code"] == "headers_too_large"
        assert resp.headers["connection"] == "close"


async def test_a_megabyte_of_headers_is_431_from_a_real_server(live_services: LiveServices) -> None:
    """uvicorn's default parser (httptools) has no header size limit of its own."""
    async with httpx.AsyncClient(timeout=30) as client:
        for svc, url in live_services.urls.items():
            resp = await client.get(url + "/healthz", headers={"X-Big": "a" * 1_000_000})
            assert resp.status_code == 431, (svc, resp.status_code)
            assert resp.json()["code"] == "headers_too_large"
            assert (await client.get(url + "/healthz")).status_code == 200


# --------------------------------------------------------------------------- non-finite numbers


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1.5E+400"]


async def test_non_finite_numbers_in_json_bodies_are_422_on_every_service(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    """Python's json parser reads NaN, Infinity and -Infinity (not JSON) and turns 1e999 into
    infinity; a service then failed (500) or stored null. Refused before any route runs."""
    for client, path, template in (
        (tasks_client, "/v1/projects", '{"title": "t", "reward": "0.10", "x": %s}'),
        (tasks_client, "/v1/projects/NOPE/tasks", '{"tasks": [{"input": {"v": [1, %s]}}]}'),
        (workers_client, "/v1/accounts", '{"kind": "worker", "name": %s}'),
        (payments_client, "/v1/deposits", '{"amount": %s}'),
    ):
        for token in NON_FINITE:
            resp = await client.post(
                path,
                content=template % token,
                headers={"Content-Type": "application/json", "Authorization": "Bearer nope"},
            )
            assert resp.status_code == 422, (path, token, resp.text)
            assert resp.json()["errors"] == [{"loc": ["body"], "msg": "not a finite number"}]
    # NDJSON uploads: the line is named
    resp = await tasks_client.post(
        "/v1/projects/NOPE/tasks",
        content=b'{"input": {"a": 1}}\n{"input": {"a": NaN}}\n',
        headers={"Content-Type": "application/x-ndjson", "Authorization": "Bearer nope"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"] == [{"loc": ["line", 2], "msg": "not a finite number"}]


async def test_the_words_nan_and_infinity_in_strings_and_tiny_or_long_numbers_pass(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    from tests.fixtures.accounts import create_requester
    from tests.fixtures.tasks import PROJECT_DEFAULTS

    requester = await create_requester(workers_client)
    resp = await tasks_client.post("/v1/projects", json=PROJECT_DEFAULTS, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    path = f"/v1/projects/{resp.json()['id']}/tasks"
    for word in ("NaN", "Infinity", "1e999", '-Infinity \\" NaN', "\\u0030e999"):
        body = (
            f'{{"tasks": [{{"input": {{"t": "{word}", "n": [1e-999, 123.456e-7, {"9" * 50}]}}}}]}}'
        )
        resp = await tasks_client.post(
            path,
            content=body,
            headers={**requester.headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == 201, (body, resp.text)


def test_no_float_query_parameter_accepts_nan_or_infinity(apps: dict) -> None:
    """Query, path and header parameters typed float would take "nan" and "inf" (pydantic's
    float parsing): any such parameter must say allow_inf_nan=False."""
    from pydantic.fields import FieldInfo

    from tests.security.routes import iter_routes

    offenders = []
    for info in iter_routes(apps):
        stack = [info.route.dependant]
        while stack:
            dep = stack.pop()
            stack.extend(dep.dependencies)
            for param in (*dep.query_params, *dep.path_params, *dep.header_params):
                annotation = getattr(param.field_info, "annotation", None)
                if "float" not in repr(annotation):
                    continue
                allowed = [
                    m.allow_inf_nan
                    for m in param.field_info.metadata
                    if hasattr(m, "allow_inf_nan")
                ]
                if not isinstance(param.field_info, FieldInfo) or allowed != [False]:
                    offenders.append(f"{info.service} {info.method} {info.path} {param.name}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- dependency errors


async def test_dependency_errors_are_answered_by_the_route_layer_not_the_server_layer() -> None:
    """503 for the database or a peer being unreachable comes from Starlette's
    ExceptionMiddleware: nothing is re-raised to the server (which would log a traceback, record
    500 and drop the connection). The same exception types raised by a bug stay 500s."""
    from fastapi import FastAPI

    from shared.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)
    failures: dict[str, BaseException] = {
        "refused": ConnectionRefusedError(111, "Connect call failed"),
        "timeout": TimeoutError(),
        "gone": asyncpg.ConnectionDoesNotExistError("connection was closed"),
        "shutdown": asyncpg.AdminShutdownError("terminating connection"),
        "full": asyncpg.TooManyConnectionsError("too many clients"),
        # a statement meeting the server's goodbye on a pooled connection (a restart)
        "busy": asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        "peer": httpx.ConnectError("peer down"),
        "bug": asyncpg.UniqueViolationError("duplicate key"),
    }

    @app.get("/fail/{what}")
    async def fail(what: str) -> None:
        raise failures[what]

    transport = httpx.ASGITransport(app=app)  # raises what the app re-raises to the server
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for what in ("refused", "timeout", "gone", "shutdown", "full", "busy", "peer"):
            resp = await client.get(f"/fail/{what}")
            assert resp.status_code == 503, (what, resp.text)
            assert resp.json()["code"] == "dependency_unavailable"
            assert int(resp.headers["Retry-After"]) >= 1
        with pytest.raises(asyncpg.UniqueViolationError):
            await client.get("/fail/bug")
