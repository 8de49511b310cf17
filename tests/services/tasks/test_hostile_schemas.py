"""Requester-supplied answer schemas are hostile input (SSRF, ReDoS, work bombs, NaN).

A free_form project's `answer_schema` may only refer to itself (`#/...`), is bounded in size,
depth and the work one answer can cause, and its patterns run on a linear-time engine. What is
refused at create/update is 422 `validation_error` at `["body", "answer_schema"]`; a schema stored
before these rules (written here straight into the database) still answers submit quickly and
never reaches the network. NaN/Infinity are refused in schemas and, for every task type, in
answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from services.tasks.answers import MAX_BOXES, answer_schema_for, schema_problems, validate_answer
from shared.safe_schema import MAX_SCHEMA_BYTES, UnsafeSchema, compile_schema
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import accepted, published_project, submit

# Generous for a loaded 2-core machine; Python's re needs several seconds for EVIL below.
QUICK_SECONDS = 1.0
EVIL = "a" * 26 + "!"
JSON = {"content-type": "application/json"}

FREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}},
    "required": ["code"],
}
PROJECT: dict[str, Any] = {
    "title": "Type the code",
    "task_type": "free_form",
    "labels": None,
    "reward": "0.10",
    "assignment_duration_seconds": 600,
    "lifetime_seconds": 86_400,
}


def _laughs(levels: int) -> dict[str, Any]:
    """Each level evaluates the next twice: 2**levels evaluations from a ~2 KB schema."""
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {
        "type": "object",
        "$defs": defs,
        "properties": {"code": {"$ref": "#/$defs/d0"}},
    }


# --- a server the service must never reach -------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def trap() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server (base URL, the paths it was asked for)."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _remote_schemas(base: str) -> list[dict[str, Any]]:
    return [
        {"type": "object", "properties": {"code": {"$ref": f"{base}/code.json"}}},
        {"type": "object", "allOf": [{"$ref": f"{base}/all.json#/x"}]},
        {"type": "object", "properties": {"code": {"$dynamicRef": f"{base}/dyn.json#meta"}}},
        {"type": "object", "$schema": f"{base}/meta.json"},
        {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#"},
        {"$id": f"{base}/", "type": "object", "properties": {"code": {"$ref": "code.json"}}},
        {"type": "object", "properties": {"code": {"$id": f"{base}/x.json"}}},
        {"type": "object", "properties": {"code": {"$ref": "file:///etc/passwd"}}},
        {"type": "object", "properties": {"code": {"$ref": "code.json"}}},  # relative: remote
        # A local pointer into data that holds a remote reference is refused too.
        {
            "type": "object",
            "properties": {"code": {"$ref": "#/x-data/0"}},
            "x-data": [{"$ref": f"{base}/via-pointer.json"}],
        },
    ]


async def _create(
    tasks_client: httpx.AsyncClient, requester: Any, **overrides: Any
) -> httpx.Response:
    body = {k: v for k, v in {**PROJECT, **overrides}.items() if v is not None}
    return await tasks_client.post("/v1/projects", json=body, headers=requester.headers)


def _assert_schema_refused(resp: httpx.Response, *needles: str) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["code"] == "validation_error", problem
    [error] = [e for e in problem["errors"] if e["loc"] == ["body", "answer_schema"]]
    for needle in needles:
        assert needle in error["msg"], error
    return problem


async def _project_count(db, requester_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM projects WHERE requester_id = $1", requester_id)


# --- create / update ------------------------------------------------------------------------


async def test_remote_references_are_refused_at_create_and_never_fetched(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db, trap
) -> None:
    base, hits = trap
    requester = await create_requester(workers_client)
    for schema in _remote_schemas(base):
        resp = await _create(tasks_client, requester, answer_schema=schema)
        _assert_schema_refused(resp, "not allowed")
    assert hits == []
    assert await _project_count(db, requester.id) == 0


async def test_remote_references_are_refused_on_update(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db, trap
) -> None:
    base, hits = trap
    requester = await create_requester(workers_client)
    resp = await _create(tasks_client, requester, answer_schema=FREE_SCHEMA)
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["id"]
    for schema in _remote_schemas(base):
        resp = await tasks_client.patch(
            f"/v1/projects/{project_id}", json={"answer_schema": schema}, headers=requester.headers
        )
        _assert_schema_refused(resp, "not allowed")
    assert hits == []
    stored = await db.fetchval("SELECT answer_schema::text FROM projects WHERE id = $1", project_id)
    assert orjson.loads(stored) == FREE_SCHEMA


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        (_laughs(40), "too much work"),
        (  # recursion that doubles its work at each level of the answer
            {
                "type": "object",
                "anyOf": [
                    {"properties": {"a": {"$ref": "#"}}},
                    {"properties": {"a": {"$ref": "#"}}},
                ],
            },
            "too much work",
        ),
        (
            {
                "type": "object",
                "$defs": {"x": {"$ref": "#/$defs/x"}},
                "allOf": [{"$ref": "#/$defs/x"}],
            },
            "cycle",
        ),
        (
            {
                "type": "object",
                "properties": {f"field_{i:05d}": {"type": "string"} for i in range(3_000)},
            },
            f"at most {MAX_SCHEMA_BYTES}",
        ),
        ({"type": "object", "properties": {"code": {"pattern": "^(?=a)a+$"}}}, "pattern"),
        ({"type": "object", "properties": {"code": {"pattern": "^(a)\\1$"}}}, "pattern"),
        ({"type": "object", "patternProperties": {"(?<=x)y": {}}}, "pattern"),
        ({"type": "object", "properties": {"code": {"$ref": "#/$defs/missing"}}}, "point"),
    ],
)
async def test_schema_bombs_are_refused_at_create_quickly(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db,
    schema: dict[str, Any],
    needle: str,
) -> None:
    requester = await create_requester(workers_client)
    started = time.perf_counter()
    resp = await _create(tasks_client, requester, answer_schema=schema)
    assert time.perf_counter() - started < QUICK_SECONDS
    _assert_schema_refused(resp, needle)
    assert await _project_count(db, requester.id) == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_in_an_answer_schema_are_422(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db, token: str
) -> None:
    requester = await create_requester(workers_client)
    body = orjson.dumps({k: v for k, v in PROJECT.items() if v is not None})[:-1] + (
        b', "answer_schema": {"type": "object", "properties": {"n": {"maximum": '
        + token.encode()
        + b"}}}}"
    )
    resp = await tasks_client.post(
        "/v1/projects", content=body, headers={**requester.headers, **JSON}
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert await _project_count(db, requester.id) == 0


# --- submit ---------------------------------------------------------------------------------


async def _open_assignment(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    **overrides: Any,
) -> tuple[Any, Any]:
    """(project, worker) on a published project with one task (free_form unless told)."""
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=[{"input": {"text": "type the code"}}],
        **{**PROJECT, "answer_schema": FREE_SCHEMA, **overrides},
    )
    return project, await create_worker(workers_client)


async def _store_schema(db, project_id: str, schema: dict[str, Any]) -> None:
    """A schema saved before the rules existed: written straight into the row."""
    await db.execute(
        "UPDATE projects SET answer_schema = $2::jsonb WHERE id = $1",
        project_id,
        orjson.dumps(schema).decode(),
    )


async def _timed_submit(
    tasks_client: httpx.AsyncClient, worker: Any, assignment_id: str, answer: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    resp = await submit(tasks_client, worker, assignment_id, answer)
    return resp, time.perf_counter() - started


async def test_backtracking_pattern_is_matched_in_linear_time(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
        "required": ["code"],
    }
    project, worker = await _open_assignment(
        tasks_client, workers_client, payments_client, answer_schema=schema
    )
    work = await accepted(tasks_client, worker, project.id)
    resp, took = await _timed_submit(tasks_client, worker, work["assignment_id"], {"code": EVIL})
    assert resp.status_code == 422, resp.text
    assert took < QUICK_SECONDS, took
    assert resp.json()["errors"][0]["loc"] == ["body", "answer", "code"]
    resp = await submit(tasks_client, worker, work["assignment_id"], {"code": "aaaa"})
    assert resp.status_code == 200, resp.text


async def test_stored_remote_reference_is_never_fetched_at_submit(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, trap
) -> None:
    base, hits = trap
    project, worker = await _open_assignment(tasks_client, workers_client, payments_client)
    await _store_schema(
        db,
        project.id,
        {"type": "object", "properties": {"code": {"$ref": f"{base}/code.json"}}},
    )
    work = await accepted(tasks_client, worker, project.id)
    resp, took = await _timed_submit(tasks_client, worker, work["assignment_id"], {"code": "x"})
    assert resp.status_code == 422, resp.text
    assert "answer schema is not accepted" in resp.json()["errors"][0]["msg"]
    assert took < QUICK_SECONDS, took
    assert hits == []
    status = await db.fetchval(
        "SELECT status FROM assignments WHERE id = $1", work["assignment_id"]
    )
    assert status == "accepted"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "schema",
    [
        {  # look-ahead: Python's backtracking re, refused by the linear engine
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^(?=x*)(a+)+$"}},
        },
        {  # linear engine: matched at once
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^(a|a)+$"}},
        },
        _laughs(26),  # 67 million evaluations for any answer
    ],
    ids=["lookahead", "alternation", "laughs"],
)
async def test_stored_hostile_schemas_answer_submit_quickly(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, schema
) -> None:
    project, worker = await _open_assignment(tasks_client, workers_client, payments_client)
    await _store_schema(db, project.id, schema)
    work = await accepted(tasks_client, worker, project.id)
    resp, took = await _timed_submit(tasks_client, worker, work["assignment_id"], {"code": EVIL})
    assert resp.status_code == 422, resp.text
    assert took < QUICK_SECONDS, took


async def test_format_is_an_annotation_only(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, trap
) -> None:
    base, hits = trap
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "format": "uri"},
            "host": {"type": "string", "format": "idn-hostname"},
            "mail": {"type": "string", "format": "email"},
        },
    }
    project, worker = await _open_assignment(
        tasks_client, workers_client, payments_client, answer_schema=schema
    )
    work = await accepted(tasks_client, worker, project.id)
    answer = {"code": f"{base}/fetch-me", "host": "127.0.0.1", "mail": "not an email"}
    resp = await submit(tasks_client, worker, work["assignment_id"], answer)
    assert resp.status_code == 200, resp.text
    assert hits == []


BOX = {"label": "car", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4}


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("overrides", "answer_json"),
    [
        (
            {"task_type": "bounding_box", "labels": ["car", "bus"], "answer_schema": None},
            '{"boxes": [{"label": "car", "x": %s, "y": 0.2, "width": 0.3, "height": 0.4}]}',
        ),
        ({"answer_schema": {"type": "object"}}, '{"score": %s}'),
        ({"answer_schema": {"type": "object"}}, '{"deep": [1, {"n": %s}]}'),
    ],
    ids=["bounding_box", "free_form", "free_form_nested"],
)
async def test_non_finite_numbers_in_answers_are_422_for_every_task_type(
    tasks_client: httpx.AsyncClient,
    workers_client,
    payments_client,
    db,
    token: str,
    overrides: dict[str, Any],
    answer_json: str,
) -> None:
    project, worker = await _open_assignment(
        tasks_client, workers_client, payments_client, **overrides
    )
    work = await accepted(tasks_client, worker, project.id)
    body = b'{"answer": ' + (answer_json % token).encode() + b"}"
    resp = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/submit",
        content=body,
        headers={**worker.headers, **JSON},
    )
    assert resp.status_code == 422, resp.text
    row = await db.fetchrow(
        "SELECT status, answer FROM assignments WHERE id = $1", work["assignment_id"]
    )
    assert row["status"] == "accepted" and row["answer"] is None


# --- the validators on their own (Python values no JSON parser would produce) ---------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_validate_answer_refuses_non_finite_floats_for_every_task_type(value: float) -> None:
    cases = [
        ("bounding_box", None, {"boxes": [{**BOX, "width": value}]}, ["boxes", 0, "width"]),
        ("transcription", None, {"text": "x", "n": value}, ["n"]),
        ("classification", ["a", "b"], {"label": value}, ["label"]),
        ("free_form", None, {"x": [value]}, ["x", 0]),
    ]
    for task_type, labels, answer, loc in cases:
        schema = answer_schema_for(
            task_type=task_type,
            labels=labels,
            multi_label=False,
            answer_schema={"type": "object"} if task_type == "free_form" else None,
        )
        problems = validate_answer(schema, answer)
        assert {"loc": loc, "msg": "must be a finite number"} in problems, (task_type, problems)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_schema_problems_refuse_non_finite_floats(value: float) -> None:
    [problem] = schema_problems({"type": "object", "properties": {"a": {"minimum": value}}})
    assert "NaN and Infinity" in problem and "/properties/a/minimum" in problem
    with pytest.raises(UnsafeSchema):
        compile_schema({"type": "object", "const": value})


def test_recursive_schemas_that_descend_are_allowed() -> None:
    tree = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "left": {"$ref": "#/$defs/node"},
                    "right": {"$ref": "#/$defs/node"},
                },
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
    }
    assert schema_problems(tree) == []
    deep: dict[str, Any] = {"value": 1}
    for _ in range(50):
        deep = {"value": 1, "left": deep, "right": {"value": 2}}
    assert validate_answer(tree, {"root": deep}) == []
    assert validate_answer(tree, {"root": {"left": {"value": "x"}}}) == [
        {"loc": ["root", "left", "value"], "msg": '"x" is not of type "integer"'}
    ]


def test_an_answer_too_large_for_its_schema_is_refused_before_validation() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array"}}}
    started = time.perf_counter()
    problems = validate_answer(schema, {"items": list(range(100_000))})
    assert problems == []
    heavy = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"allOf": [{"type": "integer"}] * 1000}}
        },
    }
    problems = validate_answer(heavy, {"items": list(range(100_000))})
    assert problems and "too large" in problems[0]["msg"]
    assert time.perf_counter() - started < QUICK_SECONDS


@pytest.mark.parametrize(
    "schema",
    [
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
        {
            "type": "object",
            "$defs": {"code": {"type": "string", "pattern": "^\\p{L}[\\w-]{0,20}$"}},
            "properties": {"code": {"$ref": "#/$defs/code"}, "again": {"$ref": "#/%24defs/code"}},
        },
        {"type": "object", "properties": {"tree": {"$dynamicRef": "#"}}},
        {"type": "object", "patternProperties": {"^x-[a-z]+$": {"type": "string"}}},
        {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
    ],
)
def test_ordinary_schemas_are_still_allowed(schema: dict[str, Any]) -> None:
    assert schema_problems(schema) == []


def test_a_bounding_box_answer_holds_at_most_max_boxes() -> None:
    """Gold grading pairs boxes by overlap (quadratic): the number of boxes is bounded."""
    schema = answer_schema_for(
        task_type="bounding_box", labels=None, multi_label=False, answer_schema=None
    )
    assert validate_answer(schema, {"boxes": [BOX] * MAX_BOXES}) == []
    [problem] = validate_answer(schema, {"boxes": [BOX] * (MAX_BOXES + 1)})
    assert problem["loc"] == ["boxes"]
