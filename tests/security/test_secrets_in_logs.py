"""Secrets never reach logs (OWASP API8): no API key, no key hash, no internal token.

Requests that handle every secret (sign-up shows a key, authenticated calls on the three
services, a call that makes a service use the internal token towards a peer, failing keys and
tokens, an unhandled error) run with logging at DEBUG, both in-process (caplog) and through
freshly started service processes whose log files are read afterwards; the session's own live
processes' logs are searched as well.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
from pathlib import Path

import httpx
import pytest

from shared.auth import hash_api_key
from shared.logging import JsonFormatter, mask_secrets, register_secret
from tests.conftest import INTERNAL_TOKEN, SERVICES, LiveServices
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.tasks import PROJECT_DEFAULTS


def _forms(secret: str | bytes) -> set[str]:
    """The ways a secret could be written out: as is, and a key's hash as hex or base64."""
    if isinstance(secret, bytes):
        return {
            secret.hex(),
            base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
            repr(secret)[2:-1][:40],
        }
    return {secret}


def _needles(actors: list[Actor], extra_keys: list[str]) -> dict[str, str]:
    needles: dict[str, str] = {}
    for key in [a.api_key for a in actors] + extra_keys:
        needles[f"api key {key[:11]}"] = key
        # the part after the visible prefix is what must never appear
        needles[f"api key secret part {key[:11]}"] = key[11:]
        for i, form in enumerate(sorted(_forms(hash_api_key(key)))):
            needles[f"key hash ({i}) of {key[:11]}"] = form
    needles["internal token"] = INTERNAL_TOKEN
    return needles


def _leaks(text: str, needles: dict[str, str]) -> list[str]:
    return [name for name, value in needles.items() if value and value in text]


async def _exercise(
    workers: httpx.AsyncClient, tasks: httpx.AsyncClient, payments: httpx.AsyncClient
) -> tuple[list[Actor], list[str]]:
    """Every path a secret takes; returns the actors and extra keys it created."""
    requester = await create_requester(workers)
    worker = await create_worker(workers)
    resp = await workers.post(
        "/v1/accounts/me/api-keys", json={"name": "log-test"}, headers=requester.headers
    )
    assert resp.status_code == 201
    extra_key = resp.json()["api_key"]
    extra_headers = {"Authorization": f"Bearer {extra_key}"}
    assert (await workers.get("/v1/accounts/me", headers=extra_headers)).status_code == 200
    # money and a peer call: publishing makes tasks call payments' /internal with the token
    resp = await payments.post("/v1/deposits", json={"amount": "10.00"}, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    resp = await tasks.post("/v1/projects", json=PROJECT_DEFAULTS, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["id"]
    resp = await tasks.post(
        f"/v1/projects/{project_id}/tasks",
        json={"tasks": [{"input": {"image_url": "https://img.example/1.jpg"}}]},
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
    resp = await tasks.post(f"/v1/projects/{project_id}/publish", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    resp = await tasks.post(f"/v1/work/projects/{project_id}/accept", headers=worker.headers)
    assert resp.status_code == 201, resp.text
    # direct internal calls, right and wrong token, and the token sent as an API key
    check = await payments.get(
        "/internal/ledger/check", headers={"X-Internal-Token": INTERNAL_TOKEN}
    )
    assert check.status_code == 200
    for headers in (
        {"X-Internal-Token": INTERNAL_TOKEN[:-1] + "x"},
        {"X-Internal-Token": f"{INTERNAL_TOKEN}"[::-1]},
        {"Authorization": f"Bearer {INTERNAL_TOKEN}"},
    ):
        assert (await payments.get("/internal/ledger/check", headers=headers)).status_code == 401
    # failing keys: revoked, mangled, wrong scheme, in the query string and in a body
    key_id = next(
        k["id"]
        for k in (await workers.get("/v1/accounts/me/api-keys", headers=requester.headers)).json()[
            "items"
        ]
        if k["name"] == "log-test"
    )
    assert (
        await workers.delete(f"/v1/accounts/me/api-keys/{key_id}", headers=requester.headers)
    ).status_code == 204
    for headers in (
        extra_headers,  # revoked now
        {"Authorization": f"Bearer {worker.api_key}x"},
        {"Authorization": f"Basic {worker.api_key}"},
        {"Authorization": worker.api_key},
    ):
        assert (await payments.get("/v1/balance", headers=headers)).status_code == 401
    await workers.get(f"/v1/accounts/me?api_key={worker.api_key}", headers=worker.headers)
    await workers.patch("/v1/workers/me", json={"bio": worker.api_key}, headers=worker.headers)
    resp = await payments.post(
        "/v1/deposits", json={"amount": requester.api_key}, headers=requester.headers
    )
    assert resp.status_code == 422
    assert requester.api_key not in resp.text  # the error does not echo the input either
    return [requester, worker], [extra_key]


async def test_in_process_logs_hold_no_secret(
    caplog: pytest.LogCaptureFixture,
    workers_client: httpx.AsyncClient,
    tasks_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    caplog.set_level(logging.DEBUG)
    actors, keys = await _exercise(workers_client, tasks_client, payments_client)
    formatter = JsonFormatter("test")
    formatted = "\n".join(formatter.format(r) for r in caplog.records)
    assert len(caplog.records) > 20, "logging was not captured"
    assert "/v1/accounts/me" in formatted, "the access log did not run"
    needles = _needles(actors, keys)
    leaks = _leaks(formatted, needles)
    assert not leaks, leaks


@pytest.fixture(scope="module")
def debug_services(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The three services as processes logging at DEBUG (the session's run at WARNING)."""
    live = LiveServices(database_url, tmp_path_factory.mktemp("debug-logs"))
    for svc in SERVICES:
        live.env[svc.upper() + "_LOG_LEVEL"] = "DEBUG"
    for svc in SERVICES:
        live.start(svc)
    try:
        for svc in SERVICES:
            live.wait_healthy(svc)
        yield live
    finally:
        for svc in list(live.procs):
            live.stop(svc)


def _read_logs(*directories: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace")
        for directory in directories
        for path in Path(directory).glob("*.log")
    }


async def test_service_process_logs_hold_no_secret(debug_services, live_services) -> None:
    clients = {
        svc: httpx.AsyncClient(base_url=debug_services.urls[svc], timeout=30) for svc in SERVICES
    }
    try:
        actors, keys = await _exercise(clients["workers"], clients["tasks"], clients["payments"])
    finally:
        for client in clients.values():
            await client.aclose()
    for svc in list(debug_services.procs):
        debug_services.stop(svc)  # flush and close the log files
    needles = _needles(actors, keys)
    texts = _read_logs(debug_services.log_dir, live_services.log_dir)
    debug_text = "".join(
        t for p, t in texts.items() if Path(p).parent == Path(debug_services.log_dir)
    )
    assert debug_text.count("\n") > 20 and '"path":"/v1/balance"' in debug_text, debug_text[-2000:]
    leaks = {path: _leaks(text, needles) for path, text in texts.items()}
    leaks = {path: found for path, found in leaks.items() if found}
    assert not leaks, leaks
    # the session's processes were used by the other tests; their logs hold no token either
    for path, text in texts.items():
        assert INTERNAL_TOKEN not in text, path


def test_formatter_masks_keys_and_registered_secrets_in_messages_and_tracebacks() -> None:
    """Defence in depth for a future log line that slips: the formatter masks what it sees."""
    key = "mk_" + "A" * 43
    token = "a-registered-internal-token-value"
    register_secret(token)
    try:
        raise ValueError(f"bad key {key} with token {token}")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "got %s and %s", (key, token), sys.exc_info()
        )
    out = JsonFormatter("test").format(record)
    assert key not in out and token not in out, out
    assert "mk_AAAAAAAA" in out  # the visible prefix stays, so a key can still be identified
    assert mask_secrets(f"x {token} y") == "x [secret] y"
    # a short or empty secret is never registered (it would mask ordinary text)
    register_secret("")
    assert mask_secrets("plain text") == "plain text"


def test_internal_token_is_compared_in_constant_time() -> None:
    """The check in shared/auth.py goes through hmac.compare_digest (no early exit on the first
    differing byte); asserted on the source so a refactor to `==` fails here."""
    import inspect

    from shared import auth

    source = inspect.getsource(auth.require_internal)
    assert "hmac.compare_digest" in source
    assert "token ==" not in source and "== expected" not in source
    assert hashlib.sha256(b"x").digest() == hash_api_key("x")  # keys: sha256 at rest


async def test_database_errors_are_logged_without_their_parameters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing statement's bound values (the key hash on the auth lookup) stay out of the
    traceback the kit logs for an unexpected error."""
    from sqlalchemy.exc import DBAPIError

    from shared.errors import install_error_handlers

    key_hash = hash_api_key("mk_" + "B" * 43).hex()
    try:
        try:
            raise RuntimeError("connection reset")
        except RuntimeError as low:
            raise DBAPIError("SELECT 1 WHERE h = $1", (key_hash,), low) from low
    except DBAPIError as exc:
        error = exc
    from fastapi import FastAPI

    app = FastAPI()
    install_error_handlers(app)
    handler = app.exception_handlers[Exception]
    caplog.set_level(logging.ERROR)
    response = await handler(None, error)  # type: ignore[arg-type]
    assert response.status_code == 500
    logged = "\n".join(JsonFormatter("t").format(r) for r in caplog.records)
    assert "unhandled error" in logged
    assert key_hash not in logged and key_hash not in str(error), logged
