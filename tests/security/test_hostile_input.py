"""Hostile input (OWASP API4/API8) against the real endpoints: each case answers a documented 4xx
as problem+json and leaves the database exactly as it was.

Choices the kit makes (shared/app_factory.py, shared/errors.py), asserted here:
- wrong Content-Type on a JSON endpoint: 415 `unsupported_media_type` (not 422), so a client
  learns to fix its header first; `application/*+json` types are JSON;
- invalid UTF-8 or unparseable JSON: 400 `malformed_json`;
- JSON nested deeper than 64 levels: 400 `json_too_deep`, before any parser recurses;
- NUL characters (PostgreSQL cannot store them): 422 in bodies and queries, 404 in paths;
- bodies over 10 MiB: 413, refused from Content-Length or while streaming, never buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app_factory import _scan_json_exactly, scan_json_text
from tests.security.conftest import World, db_snapshot

MiB = 1024 * 1024
ONE_MB_STRING = "x" * MiB
PROJECT = {
    "title": "t",
    "task_type": "sentiment",
    "reward": "0.10",
    "assignment_duration_seconds": 60,
    "lifetime_seconds": 3600,
}
JSON = {"content-type": "application/json"}


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, (resp.request.url, resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    problem = resp.json()
    assert {"type", "title", "status", "detail", "code"} <= problem.keys(), problem
    assert problem["status"] == status
    if code is not None:
        assert problem["code"] == code, problem
    if status == 422:
        assert problem["errors"] and all("loc" in e and "msg" in e for e in problem["errors"])
    return problem


async def _expect(
    clients: dict[str, httpx.AsyncClient],
    db,
    service: str,
    method: str,
    path: str,
    *,
    status: int,
    code: str | None = None,
    **kwargs: Any,
) -> dict:
    before = await db_snapshot(db)
    resp = await clients[service].request(method, path, **kwargs)
    problem = assert_problem(resp, status, code)
    assert await db_snapshot(db) == before, f"{method} {path} changed the database"
    return problem


# --- money -------------------------------------------------------------------------------

BAD_MONEY = [
    "1.001",  # three decimals
    "-1.00",  # negative
    "0",  # zero
    "0.00",
    "99999999999999",  # over the kit's maximum
    "1e3",
    " 1.00",
    "1,00",
    "",
    "\uff10.\uff15",  # full-width digits: \d matches them in Python str regexes
    1.5,  # a float
    100,  # a JSON number
    None,
    True,
]


@pytest.mark.parametrize("amount", BAD_MONEY, ids=repr)
async def test_bad_money_is_422_everywhere(clients, world: World, db, amount) -> None:
    a, w = world.requester, world.worker
    cases = [
        ("payments", "/v1/deposits", {"amount": amount}, a),
        ("payments", "/v1/withdrawals", {"amount": amount}, w),
        (
            "payments",
            "/v1/bonuses",
            {"assignment_id": world.approved_assignment_id, "amount": amount, "reason": "r"},
            a,
        ),
        ("tasks", "/v1/projects", {**PROJECT, "reward": amount}, a),
    ]
    for service, path, body, actor in cases:
        problem = await _expect(
            clients, db, service, "POST", path, status=422, json=body, headers=actor.headers
        )
        assert problem["errors"][0]["loc"][:2] in (["body", "amount"], ["body", "reward"])


@pytest.mark.parametrize(
    ("service", "path", "field", "who"),
    [
        ("payments", "/v1/deposits", "amount", "requester"),  # test provider: at most 100000.00
        ("tasks", "/v1/projects", "reward", "requester"),
    ],
)
async def test_money_over_the_endpoint_maximum(clients, world, db, service, path, field, who):
    body = {**(PROJECT if field == "reward" else {}), field: "100000.01"}
    await _expect(
        clients, db, service, "POST", path, status=422, json=body, headers=world.requester.headers
    )


async def test_more_than_the_balance_is_402_and_moves_nothing(clients, world, db) -> None:
    await _expect(
        clients,
        db,
        "payments",
        "POST",
        "/v1/withdrawals",
        status=402,
        code="insufficient_funds",
        json={"amount": "99999.00"},
        headers=world.worker.headers,
    )


# --- integers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("assignments_per_task", 0),
        ("assignments_per_task", 101),
        ("assignments_per_task", 2**63),
        ("assignments_per_task", -(2**63) - 1),
        ("assignments_per_task", 1.5),
        ("assignment_duration_seconds", 29),
        ("assignment_duration_seconds", 2**64),
        ("lifetime_seconds", -1),
        ("auto_approve_seconds", 2_592_001),
        ("estimated_seconds_per_assignment", 2**40),
        ("min_gold_accuracy", 101),
    ],
)
async def test_integers_out_of_range(clients, world, db, field, value) -> None:
    problem = await _expect(
        clients,
        db,
        "tasks",
        "POST",
        "/v1/projects",
        status=422,
        json={**PROJECT, field: value},
        headers=world.requester.headers,
    )
    assert problem["errors"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**70])
async def test_qualification_values_are_int32(clients, world, db, value) -> None:
    await _expect(
        clients,
        db,
        "workers",
        "PUT",
        f"/v1/qualification-types/{world.type_id}/workers/{world.worker.id}",
        status=422,
        json={"value": value},
        headers=world.requester.headers,
    )


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=-1", "limit=" + "9" * 30, "limit=abc", "cursor=!!"]
)
async def test_bad_paging_parameters(clients, world, db, query) -> None:
    for service, path in (("tasks", "/v1/projects"), ("payments", "/v1/transactions")):
        await _expect(
            clients,
            db,
            service,
            "GET",
            f"{path}?{query}",
            status=422,
            headers=world.requester.headers,
        )


# --- strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "method", "path_of", "body_of", "who"),
    [
        ("tasks", "POST", "/v1/projects", lambda: {**PROJECT, "title": ONE_MB_STRING}, "A"),
        ("tasks", "POST", "/v1/projects", lambda: {**PROJECT, "description": ONE_MB_STRING}, "A"),
        ("tasks", "POST", "/v1/projects", lambda: {**PROJECT, "instructions": ONE_MB_STRING}, "A"),
        ("tasks", "POST", "/v1/projects", lambda: {**PROJECT, "keywords": [ONE_MB_STRING]}, "A"),
        (
            "tasks",
            "POST",
            lambda w: f"/v1/projects/{w.draft_project_id}/tasks",
            lambda: {"tasks": [{"input": {"t": 1}, "external_id": ONE_MB_STRING}]},
            "A",
        ),
        (
            "tasks",
            "POST",
            lambda w: f"/v1/assignments/{w.submitted_assignment_id}/reject",
            lambda: {"feedback": ONE_MB_STRING},
            "A",
        ),
        ("workers", "PATCH", "/v1/workers/me", lambda: {"bio": ONE_MB_STRING}, "W"),
        ("workers", "POST", "/v1/qualification-types", lambda: {"name": ONE_MB_STRING}, "A"),
        (
            "workers",
            "POST",
            "/v1/accounts",
            lambda: {"kind": "worker", "name": ONE_MB_STRING, "email": "big@example.com"},
            None,
        ),
        (
            "workers",
            "POST",
            "/v1/blocks",
            lambda: {"worker_id": ONE_MB_STRING, "reason": "r"},
            "A",
        ),
        (
            "payments",
            "POST",
            "/v1/bonuses",
            lambda: {"assignment_id": "X", "amount": "0.10", "reason": ONE_MB_STRING},
            "A",
        ),
    ],
)
async def test_one_megabyte_strings_hit_max_lengths(
    clients, world, db, service, method, path_of, body_of, who
) -> None:
    path = path_of(world) if callable(path_of) else path_of
    headers = {"A": world.requester.headers, "W": world.worker.headers, None: {}}[who]
    await _expect(clients, db, service, method, path, status=422, json=body_of(), headers=headers)


async def test_oversized_idempotency_key(clients, world, db) -> None:
    await _expect(
        clients,
        db,
        "payments",
        "POST",
        "/v1/deposits",
        status=422,
        json={"amount": "1.00"},
        headers={**world.requester.headers, "Idempotency-Key": "k" * 256},
    )


# --- structure and encoding --------------------------------------------------------------

DEEP_LIST = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


def _deep_cases(world: World) -> list[tuple[str, str, str, str, dict[str, str]]]:
    """(service, method, path, body with a DEEP placeholder, headers): top-level and inside
    every free-JSON field (task input, gold answer, answer, answer schema, test answers)."""
    a, w = world.requester.headers, world.worker.headers
    return [
        ("payments", "POST", "/v1/deposits", "DEEP", a),
        (
            "tasks",
            "POST",
            f"/v1/projects/{world.draft_project_id}/tasks",
            '{"tasks":[{"input":{"x":DEEP}}]}',
            a,
        ),
        (
            "tasks",
            "POST",
            f"/v1/projects/{world.draft_project_id}/tasks",
            '{"tasks":[{"input":{"x":1},"gold_answer":DEEP}]}',
            a,
        ),
        (
            "tasks",
            "POST",
            f"/v1/assignments/{world.accepted_assignment_id}/submit",
            '{"answer":DEEP}',
            w,
        ),
        (
            "tasks",
            "POST",
            "/v1/projects",
            '{"title":"t","task_type":"free_form","answer_schema":{"properties":{"a":DEEP}},'
            '"reward":"0.10","assignment_duration_seconds":60,"lifetime_seconds":3600}',
            a,
        ),
        (
            "workers",
            "POST",
            f"/v1/qualification-attempts/{world.attempt_id}/submit",
            '{"answers":{"q1":DEEP}}',
            w,
        ),
    ]


@pytest.mark.parametrize(
    "deep", [DEEP_LIST, DEEP_OBJECT, "[" * 100_000], ids=["list", "obj", "1e5"]
)
async def test_json_nested_1000_deep_is_400_never_500(clients, world, db, deep) -> None:
    for service, method, path, template, headers in _deep_cases(world):
        await _expect(
            clients,
            db,
            service,
            method,
            path,
            status=400,
            code="json_too_deep",
            content=template.replace("DEEP", deep).encode(),
            headers={**headers, **JSON},
        )


async def test_ndjson_nested_too_deep_names_the_line(clients, world, db) -> None:
    body = '{"input": {"a": 1}}\n{"input": {"x": ' + DEEP_LIST + "}}\n"
    problem = await _expect(
        clients,
        db,
        "tasks",
        "POST",
        f"/v1/projects/{world.draft_project_id}/tasks",
        status=400,
        code="json_too_deep",
        content=body.encode(),
        headers={**world.requester.headers, "content-type": "application/x-ndjson"},
    )
    assert problem["errors"][0]["loc"] == ["line", 2]


async def test_moderate_nesting_is_still_accepted(clients, world, db) -> None:
    """The depth limit does not refuse real payloads: a 60-deep task input is stored."""
    nested = '{"a":' * 59 + "1" + "}" * 59
    resp = await clients["tasks"].post(
        f"/v1/projects/{world.draft_project_id}/tasks",
        content=('{"tasks":[{"input":' + nested + "}]}").encode(),
        headers={**world.requester.headers, **JSON},
    )
    assert resp.status_code == 201, resp.text
    await db.execute("DELETE FROM tasks WHERE id = ANY($1)", resp.json()["task_ids"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": "1.00\xff\xfe"}',  # invalid UTF-8 in a string
        b'{"amou\xc3\x28nt": "1.00"}',  # invalid UTF-8 in a key
        b"\xef\xbb\xbf\xff",  # BOM then garbage
        b'{"amount": "1.00"',  # truncated
        b'{"amount": 1' + b"9" * 5000 + b"}",  # a number no parser holds
    ],
)
async def test_invalid_utf8_and_broken_json_are_400(clients, world, db, body) -> None:
    await _expect(
        clients,
        db,
        "payments",
        "POST",
        "/v1/deposits",
        status=400,
        code="malformed_json",
        content=body,
        headers={**world.requester.headers, **JSON},
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        None,
    ],
)
async def test_wrong_content_type_on_json_endpoints_is_415(
    clients, world, db, content_type
) -> None:
    for service, method, path, actor in (
        ("payments", "POST", "/v1/deposits", world.requester),
        ("workers", "PATCH", "/v1/workers/me", world.worker),
        ("tasks", "POST", "/v1/projects", world.requester),
    ):
        headers = {**actor.headers}
        if content_type:
            headers["content-type"] = content_type
        await _expect(
            clients,
            db,
            service,
            method,
            path,
            status=415,
            code="unsupported_media_type",
            content=b'{"amount": "1.00", "bio": "x", "title": "t"}',
            headers=headers,
        )


async def test_unknown_upload_type_is_415(clients, world, db) -> None:
    await _expect(
        clients,
        db,
        "tasks",
        "POST",
        f"/v1/projects/{world.draft_project_id}/tasks",
        status=415,
        content=b"<tasks/>",
        headers={**world.requester.headers, "content-type": "application/xml"},
    )


@pytest.mark.parametrize(
    ("service", "method", "path_of", "body", "who"),
    [
        (
            "tasks",
            "POST",
            lambda w: f"/v1/projects/{w.draft_project_id}/tasks",
            {"tasks": [{"input": {"t": "a\x00b"}}]},
            "A",
        ),
        (
            "tasks",
            "POST",
            lambda w: f"/v1/projects/{w.draft_project_id}/tasks",
            {"tasks": [{"input": {"t\x00": "b"}}]},
            "A",
        ),
        ("tasks", "POST", lambda w: "/v1/projects", {**PROJECT, "title": "a\x00b"}, "A"),
        ("workers", "PATCH", lambda w: "/v1/workers/me", {"bio": "a\x00b"}, "W"),
        (
            "tasks",
            "POST",
            lambda w: f"/v1/assignments/{w.accepted_assignment_id}/submit",
            {"answer": {"label": "\x00"}},
            "W",
        ),
    ],
)
async def test_nul_characters_in_bodies_are_422(
    clients, world, db, service, method, path_of, body, who
) -> None:
    headers = world.requester.headers if who == "A" else world.worker.headers
    await _expect(
        clients,
        db,
        service,
        method,
        path_of(world),
        status=422,
        code="validation_error",
        json=body,
        headers=headers,
    )


async def test_nul_characters_in_paths_and_queries(clients, world, db) -> None:
    await _expect(
        clients,
        db,
        "tasks",
        "GET",
        "/v1/projects/%00abc",
        status=404,
        headers=world.requester.headers,
    )
    await _expect(
        clients,
        db,
        "workers",
        "GET",
        "/v1/qualification-types?query=a%00b",
        status=422,
        headers=world.requester.headers,
    )


# --- uploads -----------------------------------------------------------------------------


async def _task_count(db, project_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project_id)


async def test_broken_ndjson_rows_are_named_by_line_and_nothing_is_created(
    clients, world, db
) -> None:
    body = (
        b'{"input": {"a": 1}}\n'
        b"{broken\n"
        b'{"input": 5}\n'
        b"\n"
        b'{"input": {"b": 2}, "status": "completed"}\n'
        b'{"input": {"c": 3}}\n'
    )
    before = await _task_count(db, world.draft_project_id)
    problem = await _expect(
        clients,
        db,
        "tasks",
        "POST",
        f"/v1/projects/{world.draft_project_id}/tasks",
        status=422,
        content=body,
        headers={**world.requester.headers, "content-type": "application/x-ndjson"},
    )
    lines = sorted({e["loc"][1] for e in problem["errors"]})
    assert lines == [2, 3, 5], problem["errors"]
    assert all(e["loc"][0] == "line" for e in problem["errors"])
    assert await _task_count(db, world.draft_project_id) == before


async def test_broken_csv_rows_are_named_by_line_and_nothing_is_created(clients, world, db) -> None:
    body = (
        b"input,external_id,max_assignments\n"
        b'"{""a"": 1}",r1,1\n'
        b'"{bad",r2,1\n'
        b'"{""a"": 1}",r3,abc\n'
        b'"{""a"": 1}",r4,1,extra\n'
        b'"{""a"": 1}",r5,1\n'
    )
    problem = await _expect(
        clients,
        db,
        "tasks",
        "POST",
        f"/v1/projects/{world.draft_project_id}/tasks",
        status=422,
        content=body,
        headers={**world.requester.headers, "content-type": "text/csv"},
    )
    lines = sorted({e["loc"][1] for e in problem["errors"]})
    assert lines == [3, 4, 5], problem["errors"]


@pytest.mark.parametrize(
    "body",
    [b"text\n\xff\xfe\n", b'text\n"a\x00b"\n', b'text\n"unterminated\n'],
    ids=["utf8", "nul", "quote"],
)
async def test_broken_csv_encodings_are_4xx(clients, world, db, body) -> None:
    before = await db_snapshot(db)
    resp = await clients["tasks"].post(
        f"/v1/projects/{world.draft_project_id}/tasks",
        content=body,
        headers={**world.requester.headers, "content-type": "text/csv"},
    )
    assert resp.status_code in (400, 422), resp.text
    assert_problem(resp, resp.status_code)
    assert await db_snapshot(db) == before


# --- body size ---------------------------------------------------------------------------


class CountingBody:
    """A request body streamed in 64 KiB chunks that records how much the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            piece = b" " * min(self.chunk, self.total - self.sent)
            self.sent += len(piece)
            yield piece
            await asyncio.sleep(0)


async def test_declared_body_over_10_mib_is_413_without_reading_it(clients, world, db) -> None:
    body = CountingBody(50 * MiB)
    before = await db_snapshot(db)
    resp = await clients["payments"].post(
        "/v1/deposits",
        content=body,
        headers={**world.requester.headers, **JSON, "content-length": str(50 * MiB)},
    )
    assert_problem(resp, 413, "payload_too_large")
    assert body.sent <= 64 * 1024, body.sent  # refused from the header alone
    assert await db_snapshot(db) == before


async def test_chunked_body_over_10_mib_is_413_and_reading_stops_at_the_limit(
    clients, world, db
) -> None:
    """No Content-Length: the limit is counted while streaming, and the server stops pulling
    chunks once past it (a buffering server would pull all 50 MiB first)."""
    for service, path, content_type in (
        ("payments", "/v1/deposits", "application/json"),
        ("tasks", f"/v1/projects/{world.draft_project_id}/tasks", "text/csv"),
    ):
        body = CountingBody(50 * MiB)
        before = await db_snapshot(db)
        resp = await clients[service].post(
            path,
            content=body,
            headers={**world.requester.headers, "content-type": content_type},
        )
        assert_problem(resp, 413, "payload_too_large")
        assert 10 * MiB < body.sent <= 10 * MiB + 2 * body.chunk, body.sent
        assert await db_snapshot(db) == before


async def test_live_process_refuses_a_chunked_oversized_body(live_services, world) -> None:
    """Through uvicorn and real chunked transfer encoding, not only the in-process transport.

    The server answers 413 and closes the connection as soon as the limit is passed. A client
    still writing its body may see that answer or only the closed socket (which one is a race
    in the client's HTTP library); either way the server must have stopped reading: of a 64 MiB
    body, no more than the limit plus what the kernel's socket buffers hold was ever sent."""
    body = CountingBody(64 * MiB)
    async with httpx.AsyncClient(base_url=live_services.urls["payments"], timeout=30) as client:
        try:
            resp = await client.post(
                "/v1/deposits", content=body, headers={**world.requester.headers, **JSON}
            )
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            resp = None
    if resp is not None:
        assert_problem(resp, 413, "payload_too_large")
    assert body.sent < 32 * MiB, body.sent


async def test_just_under_the_limit_is_read(clients, world) -> None:
    """10 MiB of valid JSON whitespace padding is parsed, not refused (the limit is not lower)."""
    body = b'{"amount": "0.01"}' + b" " * (10 * MiB - 64)
    resp = await clients["payments"].post(
        "/v1/deposits", content=body, headers={**world.requester.headers, **JSON}
    )
    assert resp.status_code == 201, resp.text[:300]


async def test_csv_cell_of_deep_json_is_4xx(clients, world, db) -> None:
    cell = DEEP_LIST.replace('"', '""')
    body = f'input\n"{{""x"": {cell}}}"\n'.encode()
    before = await db_snapshot(db)
    try:
        resp = await clients["tasks"].post(
            f"/v1/projects/{world.draft_project_id}/tasks",
            content=body,
            headers={**world.requester.headers, "content-type": "text/csv"},
        )
    except Exception as exc:  # the in-process transport re-raises the app's 500 cause
        pytest.fail(f"unhandled: {exc!r}")
    assert resp.status_code in (400, 422), resp.text
    assert_problem(resp, resp.status_code)
    assert await db_snapshot(db) == before


_PIECES = [b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b"\n", b"u0000", b"\\u0000", b"\x00", b" "]


@settings(max_examples=3000, deadline=None, database=None)
@given(
    body=st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join),
    max_depth=st.integers(min_value=1, max_value=4),
    per_line=st.booleans(),
)
def test_fast_json_scan_agrees_with_the_exact_scan(body, max_depth, per_line) -> None:
    """The kit's fast path (string stripping + pair deletion) decides like the byte scan."""
    assert scan_json_text(body, max_depth=max_depth, per_line=per_line) == _scan_json_exactly(
        body, max_depth=max_depth, per_line=per_line
    )
