"""Property-based fuzzing of each service's OpenAPI document with schemathesis (v4).

For every operation, schemathesis generates valid (positive) and invalid (negative) requests
from the document; each is sent in-process to the running app (the same ASGI transport as the
other tests, so the real engine and peers are used) with a real API key of the operation's role,
or the internal token. Every response must be:
- not a 5xx (`not_a_server_error`, and our own check, which no KNOWN_PENDING entry excuses:
  a 503 is a dependency down, which cannot happen here, and a 500 is a bug);
- a documented status code, with a documented content type and a body matching the documented
  schema (`status_code_conformance`, `content_type_conformance`, `response_schema_conformance`);
- never a redirect to an absolute URL (one built from the Host header is an open redirect).

Each operation is also sent once more with a trailing slash and a hostile Host header: a 404
problem, never a redirect.

Bounded for CI: `SECURITY_FUZZ_EXAMPLES` examples per operation and mode (default 12; the
hypothesis pass in test_fuzz_inputs.py aims more examples at cursors, dates and numbers),
derandomized so a failure reproduces; set `SECURITY_FUZZ_SEED` to explore other inputs locally.
Hypothesis only generates here; requests go out from the async test, so no second event loop
touches the engine.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester, create_worker
from tests.security.routes import iter_routes

EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("SECURITY_FUZZ_SEED")
TIME_BUDGET_SECONDS = 150  # per service; the three services take ~5-30 s each here
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Operations with a known, reported failure in a service another team owns: (service, METHOD,
# path) -> why. Only these operations may fail, and only with the named check; anything else
# (a new route, a new failure) fails the test. Remove an entry once the fix lands.
KNOWN_PENDING: dict[tuple[str, str, str], str] = {}

_PATH_PARAM = re.compile(r"\{[^}]+\}")


def _draw(operation: Any, mode: GenerationMode, n: int) -> list[Any]:
    """n generated cases (fewer when the strategy is small); generation only, no shrinking."""
    cases: list[Any] = []

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=SEED is None,
    )
    def collect(case: Any) -> None:
        cases.append(case)

    if SEED is not None:
        collect = seed(int(SEED))(collect)
    try:
        collect()
    except Unsatisfiable:
        pass  # e.g. no negative form of an operation without parameters or body
    return cases


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params") or None,
    }
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        if isinstance(data, str | bytes):
            out["content"] = data
        else:
            out["data"] = data
    return out


@pytest.fixture(scope="module")
async def fuzz_headers(workers_client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """Real credentials per role, for accounts of their own (the fuzzer creates and changes
    things; it must not touch the other tests' world)."""
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    return {
        "requester": requester.headers,
        "worker": worker.headers,
        "any": requester.headers,
        "optional": requester.headers,
        "none": {},
        "internal": {"X-Internal-Token": INTERNAL_TOKEN},
    }


@pytest.mark.parametrize("service", ["workers", "tasks", "payments"])
async def test_fuzzed_requests_get_documented_non_5xx_answers(
    apps: dict, clients: dict[str, httpx.AsyncClient], fuzz_headers, service: str
) -> None:
    app = apps[service]
    auth = {(i.method, i.path): i.auth for i in iter_routes({service: app})}
    schema = schemathesis.openapi.from_dict(app.openapi())
    client = clients[service]
    failures: list[str] = []
    pending_seen: set[tuple[str, str, str]] = set()
    sent = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        method, path = operation.method.upper(), operation.path
        headers = fuzz_headers[auth.get((method, path), "none")]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in _draw(operation, mode, EXAMPLES):
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
                try:
                    request = client.build_request(**_httpx_kwargs(kwargs))
                except (httpx.HTTPError, UnicodeEncodeError, ValueError, TypeError):
                    continue  # not expressible as an HTTP request (e.g. a non-latin-1 header)
                response = await client.send(request)
                sent += 1
                location = response.headers.get("location", "")
                if response.status_code >= 500 or location.startswith(("http:", "https:", "//")):
                    # never excused by KNOWN_PENDING
                    failures.append(
                        f"{method} {path} [{mode.value}] -> {response.status_code} "
                        f"(location {location!r}): {response.text[:300]}\n"
                        f"  reproduce: {case.as_curl_command(headers=headers)}"
                    )
                    continue
                try:
                    case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])
                except (Exception, BaseExceptionGroup) as exc:
                    key = (service, method, path)
                    if key in KNOWN_PENDING:
                        pending_seen.add(key)
                        continue
                    failures.append(
                        f"{method} {path} [{mode.value}] -> {response.status_code}: "
                        f"{str(exc).strip()[:600]}\n  body: {response.text[:300]}\n"
                        f"  reproduce: {case.as_curl_command(headers=headers)}"
                    )
        # the same operation with a slash too many, as a client behind a hostile proxy sends it
        slashed = await client.request(
            method,
            "http://testserver" + _PATH_PARAM.sub("X", path) + "/",
            headers={**headers, "Host": "evil.example"},
        )
        if slashed.status_code != 404 or "location" in slashed.headers:
            failures.append(f"{method} {path}/ (Host: evil.example) -> {slashed.status_code}")
        assert time.monotonic() - started < TIME_BUDGET_SECONDS, "fuzzing over its time budget"
    assert sent > 50, sent
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:40])
