"""Postgres down is an expected condition, answered like one: 503 `dependency_unavailable` with
Retry-After, one WARNING line without a traceback, 503 in the access log, and the client's
keep-alive connection still usable for its next request.

Before, the answer went through Starlette's ServerErrorMiddleware, which re-raises after
answering: the access log said 500, the server logged "Exception in ASGI application" with a
traceback and closed the connection without `Connection: close`, so a pooled client's next
request on it failed with a connection reset.

Real uvicorn processes (the h11/httptools connection handling is what is under test), on a
database that is not there (a closed port) and on one that goes away under a running service
(through a TCP proxy that is cut: the pools' connections are reset, new ones refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.conftest import free_port
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import PROJECT_DEFAULTS
from tests.reliability.conftest import Stack

LOG_AT_INFO = {f"{svc}_LOG_LEVEL": "INFO" for svc in ("TASKS", "WORKERS", "PAYMENTS")}
FAKE_KEY = {"Authorization": "Bearer mk_" + "x" * 40}


def _log_entries(stack: Stack, svc: str) -> list[dict[str, Any]]:
    entries = []
    for line in stack.log(svc).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"raw": line}
        entries.append(entry if isinstance(entry, dict) else {"raw": line})
    return entries


def _local_port(resp: httpx.Response) -> int:
    stream = resp.extensions["network_stream"]
    return stream.get_extra_info("client_addr")[1]


def _two_requests_on_one_connection(
    base_url: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> list[tuple[httpx.Response, str, int]]:
    """Two requests in a row on ONE keep-alive connection (the second would be reset if the
    server closed it after the first): (response, request id, local port) each."""
    out = []
    with httpx.Client(
        base_url=base_url, timeout=10, limits=httpx.Limits(max_connections=1)
    ) as client:
        for _ in range(2):
            rid = "dbdown-" + uuid.uuid4().hex[:16]
            resp = client.request(
                method, path, headers={"X-Request-ID": rid, **(headers or {})}, **kw
            )
            out.append((resp, rid, _local_port(resp)))
    return out


def _assert_expected_outage_answers(
    stack: Stack, svc: str, answers: list[tuple[httpx.Response, str, int]]
) -> None:
    port1, port2 = (port for _, _, port in answers)
    for resp, _, _ in answers:
        assert resp.status_code == 503, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["code"] == "dependency_unavailable"
        assert int(resp.headers["Retry-After"]) >= 1
        assert resp.headers.get("connection", "").lower() != "close"
    assert port1 == port2, "the second request needed a new connection"

    time.sleep(0.2)  # the access line is written after the response
    entries = _log_entries(stack, svc)
    text = stack.log(svc)
    assert "Exception in ASGI application" not in text, text[-3000:]
    for _, rid, _ in answers:
        mine = [e for e in entries if e.get("request_id") == rid]
        assert not [e for e in mine if "exc" in e or e.get("level") in ("ERROR", "CRITICAL")], mine
        warnings = [e for e in mine if e.get("level") == "WARNING"]
        assert len(warnings) == 1, mine
        assert warnings[0]["status"] == 503 and "\n" not in warnings[0]["msg"], warnings
        access = [e for e in mine if e.get("logger") == "access"]
        assert [e["status"] for e in access] == [503], mine


def test_database_never_reachable_answers_503_and_keeps_the_connection(
    make_stack,
) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    stack = make_stack(closed, LOG_AT_INFO)
    stack.start_all("tasks", "workers")

    # WriteDbDep/ReadDbDep routes (authentication reads the key on the request's connection)
    _assert_expected_outage_answers(
        stack,
        "tasks",
        _two_requests_on_one_connection(
            stack.urls["tasks"], "GET", "/v1/projects", headers=FAKE_KEY
        ),
    )
    # the hot path's dependency (shared.hot_path, an AutocommitDb on the hot pool)
    _assert_expected_outage_answers(
        stack,
        "tasks",
        _two_requests_on_one_connection(
            stack.urls["tasks"], "POST", "/v1/work/projects/NOPE/accept", headers=FAKE_KEY
        ),
    )
    # a public route without a key (sign-up writes in the request's transaction, WriteDbDep)
    body = {"kind": "worker", "name": "n", "email": f"{uuid.uuid4().hex}@example.com"}
    _assert_expected_outage_answers(
        stack,
        "workers",
        _two_requests_on_one_connection(stack.urls["workers"], "POST", "/v1/accounts", json=body),
    )
    # readiness says so too, and the process stays healthy
    with httpx.Client(base_url=stack.urls["tasks"], timeout=10) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


class TcpProxy:
    """127.0.0.1:<port> forwarding to Postgres, until `cut()`: then every open connection is
    reset and new ones are refused, as when the database server goes away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            if self.is_cut:  # accepted while being cut (close() does not wake accept())
                client.close()
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.is_cut = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()  # RST


async def test_database_lost_under_a_running_service_answers_503_and_keeps_the_connection(
    fault_database: str, make_stack, clients_for
) -> None:
    parts = urlsplit(fault_database)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    through_proxy = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
    stack = make_stack(through_proxy, LOG_AT_INFO)
    stack.start_all("tasks", "workers", "payments")
    api = clients_for(stack)
    requester = await create_requester(api.workers)
    worker = await create_worker(api.workers)
    resp = await api.tasks.post("/v1/projects", json=PROJECT_DEFAULTS, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["id"]
    # warm both pools: their connections are the ones that die
    assert (await api.tasks.get("/v1/projects", headers=requester.headers)).status_code == 200
    resp = await api.tasks.post(f"/v1/work/projects/{project_id}/accept", headers=worker.headers)
    assert resp.status_code == 404, resp.text  # a draft has no work; the driver pool was used

    proxy.cut()
    await asyncio.sleep(0.2)
    _assert_expected_outage_answers(
        stack,
        "tasks",
        _two_requests_on_one_connection(
            stack.urls["tasks"], "GET", "/v1/projects", headers=requester.headers
        ),
    )
    _assert_expected_outage_answers(
        stack,
        "tasks",
        _two_requests_on_one_connection(
            stack.urls["tasks"],
            "POST",
            f"/v1/work/projects/{project_id}/accept",
            headers=worker.headers,
        ),
    )
