"""docs/api.md is the public contract: this keeps it true against the three OpenAPI documents.

What the page names is checked mechanically, so a renamed path, a dropped method or a renamed
field fails here before a client notices:

- every endpoint a table row names (`METHOD /path`, plus the row's shorthands: a bare `GET`
  for the row's last path, `/resume` or `.../reject` for a sibling of it) is served by the
  service the ownership table gives its prefix: public paths in the OpenAPI document, internal
  ones in the route table (they are hidden from the public documents);
- every field a row names in braces (`{amount}`, `{created, task_ids}`, `by_day[{date, ...}]`)
  is a property of a request or success-response schema of that row's operations;
- every object of "Objects (minimum fields)" has its fields in its schema component;
- list endpoints take `limit` (1-200, default 50) and `cursor`, and answer `{items,
  next_cursor}`; errors are the Problem schema with the contract's members.

Prose the page writes in words (status codes, semantics) is the business of the behaviour tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"
SERVICES = ("tasks", "workers", "payments")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Which service owns a public prefix (docs/architecture.md): the longest prefix wins.
OWNERS = {
    "/v1/accounts": "workers",
    "/v1/workers": "workers",
    "/v1/qualification-types": "workers",
    "/v1/qualification-attempts": "workers",
    "/v1/qualification-requests": "workers",
    "/v1/blocks": "workers",
    "/v1/levels": "workers",
    "/v1/projects": "tasks",
    "/v1/tasks": "tasks",
    "/v1/work": "tasks",
    "/v1/assignments": "tasks",
    "/v1/workers/me/assignments": "tasks",
    "/v1/balance": "payments",
    "/v1/deposits": "payments",
    "/v1/bonuses": "payments",
    "/v1/transactions": "payments",
    "/v1/earnings": "payments",
    "/v1/withdrawals": "payments",
    "/internal/ledger": "payments",
}

# "Objects (minimum fields)" bullet -> (service, schema component).
OBJECT_SCHEMAS = {
    "project": ("tasks", "ProjectRead"),
    "task": ("tasks", "TaskRead"),
    "assignment": ("tasks", "AssignmentRead"),
    "qualification type": ("workers", "QualificationTypeOwnerRead"),
    "label studio task": ("tasks", "LabelStudioTask"),
}

_SPAN = re.compile(r"`([^`]+)`")
_ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)\s+(/\S*)(.*)$")
_PARAM = re.compile(r"\{[^}/]*\}")
_QUOTED = re.compile(r'"[^"]*"')
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@pytest.fixture(scope="module")
def documents() -> Iterator[dict[str, dict[str, Any]]]:
    yield {name: doc for name, (doc, _) in _apps().items()}


@pytest.fixture(scope="module")
def route_tables() -> dict[str, set[tuple[str, str]]]:
    return {name: routes for name, (_, routes) in _apps().items()}


_APPS: dict[str, tuple[dict[str, Any], set[tuple[str, str]]]] = {}


def _apps() -> dict[str, tuple[dict[str, Any], set[tuple[str, str]]]]:
    """Each service's OpenAPI document and (method, normalised path) route table; create_app()
    reads settings but needs no database."""
    if _APPS:
        return _APPS
    saved = dict(os.environ)
    try:
        for name in SERVICES:
            os.environ[f"{name.upper()}_DATABASE_URL"] = "postgresql://x@localhost/x"
            os.environ[f"{name.upper()}_INTERNAL_TOKEN"] = "contract-test-token-0123456789"
        for name in SERVICES:
            app = importlib.import_module(f"services.{name}.app").create_app()
            _APPS[name] = (app.openapi(), _route_table(app))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return _APPS


def _route_table(app: Any) -> set[tuple[str, str]]:
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    routes = flatten(app.routes) if flatten else app.routes
    table = set()
    for route in routes:
        path = getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if isinstance(path, str):
                table.add((method, normalise(path)))
    return table


def normalise(path: str) -> str:
    return _PARAM.sub("{}", path.split("?", 1)[0]).rstrip("/") or "/"


def owner_of(path: str) -> str:
    best = max((p for p in OWNERS if path == p or path.startswith(p + "/")), key=len)
    return OWNERS[best]


class Row:
    """One table row of the contract: the endpoints it names and the field names it shows."""

    def __init__(self, line_number: int, text: str) -> None:
        self.line_number = line_number
        self.text = text
        self.endpoints: list[tuple[str, str]] = []
        self.fields: set[str] = set()
        last_path: str | None = None
        for span in _SPAN.findall(text):
            span = span.strip()
            match = _ENDPOINT.match(span)
            if match:
                method, path, rest = match.groups()
                last_path = path.split("?", 1)[0]
                self.endpoints.append((method, last_path))
                self.fields |= field_names(rest)
            elif span in METHODS and last_path:
                self.endpoints.append((span, last_path))
            elif last_path and re.fullmatch(r"(\.\.\.)?/[a-z-]+( \{[^}]*\})?", span):
                sibling, _, rest = span.removeprefix("...").partition(" ")
                method = self.endpoints[-1][0]
                last_path = last_path.rsplit("/", 1)[0] + sibling
                self.endpoints.append((method, last_path))
                self.fields |= field_names(rest)
            elif "{" in span and "/" not in span:
                self.fields |= field_names(span if span.startswith("{") else "{" + span + "}")

    def __repr__(self) -> str:
        return f"docs/api.md:{self.line_number}"


def field_names(text: str) -> set[str]:
    """Property names in a brace group of the contract's shorthand.

    Top-level names count (`{kind: "requester"|"worker", name, country?}`), and so do the
    members of a named group (`aggregate {answer, agreement}`) or of a list of objects
    (`by_day[{date, amount}]`); a map written with a placeholder key (`{question_id: answer}`,
    `{...}`) names no properties.
    """
    text = _QUOTED.sub('""', text.strip())
    if not text.startswith("{"):
        return set()
    names: set[str] = set()
    _collect(text, 0, names)
    return names


def _collect(text: str, start: int, names: set[str]) -> int:
    """Read the group opening at text[start] ("{"); returns the index after its end."""
    i = start + 1
    expect_name = True
    while i < len(text):
        char = text[i]
        if char == "}":
            return i + 1
        if char == ",":
            expect_name = True
            i += 1
            continue
        if expect_name:
            match = _NAME.match(text, i)
            if match:
                name = match.group()
                after = text[match.end() :].lstrip("?")
                names.add(name)
                i = match.end()
                expect_name = False
                # `name {...}` and `name[{...}]` hold properties; `name: {...}` is a map.
                nested = re.match(r"\??\s*(\[\s*)?\{", after)
                if nested and not after.lstrip().startswith(":"):
                    i = _collect(text, text.index("{", i), names)
                continue
        if char in "{[(":  # a nested value, or a remark in parentheses: no property names
            i = _skip(text, i)
            continue
        i += 1
    return i


def _skip(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "{[(":
            depth += 1
        elif text[i] in "}])":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def contract_rows() -> list[Row]:
    rows = []
    for number, line in enumerate(API_MD.read_text().splitlines(), start=1):
        if line.startswith("| `") and _ENDPOINT.match(_SPAN.findall(line)[0].strip()):
            rows.append(Row(number, line))
    return rows


def object_bullets() -> list[tuple[str, set[str], int]]:
    """("project", {"id", "status", ...}, line) for each bullet of "Objects (minimum fields)"."""
    out = []
    lines = API_MD.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Objects (minimum fields"))
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        match = re.match(r"- ([a-z ]+): `([^`]+)`", line)
        if not match:
            if not line.startswith("-"):
                break
            continue
        name, fields = match.groups()
        out.append((name, field_names("{" + fields + "}"), number))
    return out


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def property_names(doc: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name reachable from a schema (through refs, items and unions)."""
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return set()
        seen.add(ref)
    schema = resolve(doc, schema)
    names = set(schema.get("properties", {}))
    children: list[dict[str, Any]] = list(schema.get("properties", {}).values())
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        children += schema.get(key, [])
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            children.append(schema[key])
    for child in children:
        names |= property_names(doc, child, seen)
    return names


def operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for doc_path, item in doc["paths"].items():
        if normalise(doc_path) == normalise(path) and method.lower() in item:
            return item[method.lower()]
    return None


def operation_fields(doc: dict[str, Any], op: dict[str, Any]) -> set[str]:
    schemas = [
        media.get("schema", {}) for media in op.get("requestBody", {}).get("content", {}).values()
    ]
    for status, response in op["responses"].items():
        if str(status).startswith("2"):
            schemas += [m.get("schema", {}) for m in response.get("content", {}).values()]
    schemas += [p.get("schema", {}) for p in op.get("parameters", [])]
    names = {p["name"] for p in op.get("parameters", [])}
    for schema in schemas:
        names |= property_names(doc, schema, set())
    return names


ROWS = contract_rows()


def test_the_contract_names_endpoints() -> None:
    endpoints = [e for row in ROWS for e in row.endpoints]
    assert len(endpoints) >= 50, endpoints  # the page lists ~60; a parse that finds few is broken
    assert ("POST", "/v1/projects/{id}/resume") in endpoints  # the `/resume` shorthand
    assert ("POST", "/v1/qualification-requests/{id}/reject") in endpoints  # `.../reject`
    assert ("GET", "/v1/accounts/me/api-keys") in endpoints  # a bare `GET`


def test_field_shorthand_parser() -> None:
    assert field_names('{kind: "requester"|"worker", name, email, country?}') == {
        "kind",
        "name",
        "email",
        "country",
    }
    assert field_names("{total, by_day[{date, amount}], by_project[...], hourly_rate}") == {
        "total",
        "by_day",
        "date",
        "amount",
        "by_project",
        "hourly_rate",
    }
    assert field_names("{answers: {question_id: answer}}") == {"answers"}
    assert field_names("{input, aggregate {answer, agreement}}") == {
        "input",
        "aggregate",
        "answer",
        "agreement",
    }
    assert field_names("{account: {...}, api_key}") == {"account", "api_key"}
    assert field_names("{reward, assignments_per_task (1-100, default 1), labels?}") == {
        "reward",
        "assignments_per_task",
        "labels",
    }


@pytest.mark.parametrize("row", ROWS, ids=repr)
def test_every_endpoint_is_served_by_its_owner(
    row: Row, documents: dict[str, Any], route_tables: dict[str, set[tuple[str, str]]]
) -> None:
    for method, path in row.endpoints:
        service = owner_of(path)
        if path.startswith("/internal/"):
            assert (method, normalise(path)) in route_tables[service], (
                f"{row}: {method} {path} is not a route of {service}"
            )
        else:
            assert operation(documents[service], method, path) is not None, (
                f"{row}: {method} {path} is not in {service}'s OpenAPI document"
            )


@pytest.mark.parametrize("row", [r for r in ROWS if r.fields], ids=repr)
def test_every_named_field_is_in_the_schemas(
    row: Row, documents: dict[str, Any], route_tables: dict[str, set[tuple[str, str]]]
) -> None:
    known: set[str] = set()
    for method, path in row.endpoints:
        doc = documents[owner_of(path)]
        op = operation(doc, method, path)
        if op is None:  # internal routes are hidden from the documents: read their models
            doc = _document_with_hidden_routes(owner_of(path))
            op = operation(doc, method, path)
        if op is not None:
            known |= operation_fields(doc, op)
    missing = sorted(row.fields - known)
    assert not missing, f"{row}: fields {missing} are in no schema of {row.endpoints}"


def _document_with_hidden_routes(service: str) -> dict[str, Any]:
    """The service's OpenAPI document with hidden routes included (internal calls are documented in
    docs/internal-api.md; the contract names one of them)."""
    from fastapi.openapi.utils import get_openapi

    saved = dict(os.environ)
    try:
        os.environ[f"{service.upper()}_DATABASE_URL"] = "postgresql://x@localhost/x"
        os.environ[f"{service.upper()}_INTERNAL_TOKEN"] = "contract-test-token-0123456789"
        app = importlib.import_module(f"services.{service}.app").create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    routes = list(flatten(app.routes) if flatten else app.routes)
    context = getattr(routing, "RouteContext", None)
    if context is not None:  # recent FastAPI: frozen route contexts, shown through a subclass

        class Shown(context):  # type: ignore[misc, valid-type]
            @property
            def include_in_schema(self) -> bool:
                return True

        routes = [
            Shown(**{f.name: getattr(r, f.name) for f in dataclasses.fields(r)}) for r in routes
        ]
    else:
        for route in routes:
            if hasattr(route, "include_in_schema"):
                route.include_in_schema = True
    return get_openapi(title="all", version="0", routes=routes)


@pytest.mark.parametrize("bullet", object_bullets(), ids=lambda b: b[0])
def test_every_object_has_its_fields(
    bullet: tuple[str, set[str], int], documents: dict[str, Any]
) -> None:
    name, fields, line = bullet
    if name not in OBJECT_SCHEMAS:
        pytest.fail(f"docs/api.md:{line}: no schema is mapped for the object {name!r}")
    service, component = OBJECT_SCHEMAS[name]
    doc = documents[service]
    missing = sorted(fields - property_names(doc, doc["components"]["schemas"][component], set()))
    assert not missing, f"docs/api.md:{line}: {component} lacks {missing}"


def test_list_endpoints_follow_the_list_convention(documents: dict[str, Any]) -> None:
    checked = 0
    for service, doc in documents.items():
        for path, item in doc["paths"].items():
            op = item.get("get")
            if op is None or not path.startswith("/v1/"):
                continue
            ok = op["responses"].get("200", {}).get("content", {}).get("application/json", {})
            schema = resolve(doc, ok.get("schema", {}))
            if set(schema.get("properties", {})) != {"items", "next_cursor"}:
                continue
            checked += 1
            params = {p["name"]: p for p in op.get("parameters", [])}
            assert "cursor" in params, f"{service} GET {path}: no cursor parameter"
            limit = resolve(doc, params["limit"]["schema"])
            assert (limit.get("minimum"), limit.get("maximum"), limit.get("default")) == (
                1,
                200,
                50,
            ), f"{service} GET {path}: limit is {limit}"
    assert checked >= 10, checked  # the contract's lists; a parse that finds few is broken


def test_errors_are_problem_details(documents: dict[str, Any]) -> None:
    for service, doc in documents.items():
        problem = doc["components"]["schemas"]["Problem"]
        assert {"type", "title", "status", "detail", "code", "errors"} <= set(
            problem["properties"]
        ), service
