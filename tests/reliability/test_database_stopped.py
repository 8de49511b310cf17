"""Postgres STOPPED under running services (pg_ctl stop -m fast: the server sends "terminating
connection due to administrator command" to every session, then refuses new ones), and the same
outage seen through the nginx gateway: answered as an expected outage everywhere.

The 503 must be a 503 in the access log with ONE WARNING line and no traceback, and the client's
keep-alive connection must stay usable (or be closed with `Connection: close`): a server that
closes it silently makes the client's next request on it fail with a reset, and behind nginx a
reused upstream connection that was dropped turns a POST into a 502. tests/reliability/
test_database_down.py covers a database never reachable and one cut off by a TCP proxy; this
file covers the administrator's shutdown, whose errors arrive on the pools' live connections
(AdminShutdownError, then the connection closed, then connection refused).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.gateway import LocalGateway, Replica
from tests.conftest import free_port
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import PROJECT_DEFAULTS
from tests.gateway.conftest import require_nginx
from tests.reliability.conftest import create_migrated_database
from tests.reliability.test_database_down import (
    LOG_AT_INFO,
    _assert_expected_outage_answers,
    _local_port,
    _two_requests_on_one_connection,
)


@pytest.fixture
def own_postgres(tmp_path: Path):
    from devtools.embedded_pg import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg", fast=True)
    server = pg.start()
    try:
        yield pg, create_migrated_database(server)
    finally:
        pg.stop()


async def test_postgres_stopped_under_running_services_is_an_expected_outage(
    own_postgres, make_stack, clients_for
) -> None:
    pg, database_url = own_postgres
    stack = make_stack(database_url, LOG_AT_INFO)
    names = ("tasks", "workers", "payments")  # payments: for its payout loop's log
    for name in names:
        stack.start(name)
    for name in names:
        stack.wait_healthy(name, timeout=90)  # 30 s was short on a loaded 2-core machine
    api = clients_for(stack)
    requester = await create_requester(api.workers)
    worker = await create_worker(api.workers)
    resp = await api.tasks.post("/v1/projects", json=PROJECT_DEFAULTS, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["id"]
    # Warm both pools of tasks and the pool of workers: these connections get the shutdown.
    for _ in range(3):
        assert (await api.tasks.get("/v1/projects", headers=requester.headers)).status_code == 200
        accept = await api.tasks.post(
            f"/v1/work/projects/{project_id}/accept", headers=worker.headers
        )
        assert accept.status_code == 404, accept.text
        assert (await api.workers.get("/v1/accounts/me", headers=worker.headers)).status_code == 200

    await asyncio.to_thread(pg.stop)

    for svc, method, path, headers, kw in (
        ("tasks", "GET", "/v1/projects", requester.headers, {}),
        ("tasks", "POST", f"/v1/work/projects/{project_id}/accept", worker.headers, {}),
        ("workers", "GET", "/v1/accounts/me", worker.headers, {}),
        (
            "workers",
            "POST",
            "/v1/accounts",
            {},
            {"json": {"kind": "worker", "name": "n", "email": f"{uuid.uuid4().hex}@x.example"}},
        ),
    ):
        answers = await asyncio.to_thread(
            _two_requests_on_one_connection, stack.urls[svc], method, path, headers, **kw
        )
        _assert_expected_outage_answers(stack, svc, answers)
    # the background loops too (timers, outbox, payouts, stats): one WARNING line per attempt
    for svc in ("tasks", "workers", "payments"):
        assert "Traceback" not in stack.log(svc), stack.log(svc)[-3000:]


def test_through_the_gateway_an_outage_is_a_503_on_a_kept_connection(
    make_stack, tmp_path: Path
) -> None:
    """nginx keeps its upstream connections alive: if a replica dropped one after a 503, the
    next request nginx sent on it would fail (a POST: 502, never retried). Two sign-ups on one
    client connection through nginx both get the service's 503, on one upstream connection."""
    require_nginx()
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    stack = make_stack(dead, LOG_AT_INFO)
    stack.start("workers")
    stack.wait_healthy("workers", timeout=90)
    port = stack.ports["workers"]
    layout = {svc: [Replica(svc, 0, port)] for svc in ("tasks", "workers", "payments")}
    gateway = LocalGateway(tmp_path / "nginx", listen=[f"127.0.0.1:{free_port()}"], layout=layout)
    url = f"http://{gateway.listen[0]}"
    gateway.start()
    try:
        gateway.wait_ready(url)
        with httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=1)) as c:
            ports = []
            for _ in range(3):
                body = {"kind": "worker", "name": "n", "email": f"{uuid.uuid4().hex}@x.example"}
                resp = c.post("/v1/accounts", json=body)
                assert resp.status_code == 503, resp.text
                assert resp.json()["code"] == "dependency_unavailable"
                assert int(resp.headers["Retry-After"]) >= 1
                ports.append(_local_port(resp))
            assert len(set(ports)) == 1, "the client's connection to nginx was not kept"
    finally:
        gateway.stop()
    access = gateway.log_path.read_text()
    assert access.count('"POST /v1/accounts HTTP/1.1" 503') == 3, access
    assert " 502 " not in access and "upstream prematurely closed" not in access, access
    assert "Traceback" not in stack.log("workers")
