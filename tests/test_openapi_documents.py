"""The three OpenAPI documents are what third parties generate clients from: each is checked
here as such a developer would use it, without a database (`app.openapi()` needs no lifespan).

- valid OpenAPI 3.1 (openapi-spec-validator);
- public only: no `/internal/*` path (those routes are still served);
- operation ids: snake_case, unique across the three documents (an SDK may merge them) and
  stable (the ones below are pinned; new operations add ids, none changes);
- every 4xx/5xx is problem+json with the `Problem` schema, which names every extra member a
  service adds to a problem (`extra=` in the source); 503 with `Retry-After` on every operation
  but /healthz, `Retry-After` on every 429;
- enums are named components (`$ref`), never inline; a component of the same name is the same
  schema in every document;
- the balance is a discriminated union; the results export has a real schema;
- openapi-python-client generates a client from each document without a warning, and it imports.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("tasks", "workers", "payments")
PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_JSON = "application/problem+json"

# (service, METHOD, path) -> operationId. Pinned: generated clients name their methods after
# these (docs/api.md says they are stable). Add new operations here; never change an entry.
OPERATION_IDS: dict[tuple[str, str, str], str] = {
    ("tasks", "GET", "/healthz"): "tasks_healthz",
    ("tasks", "GET", "/readyz"): "tasks_readyz",
    ("tasks", "POST", "/v1/projects"): "create_project",
    ("tasks", "GET", "/v1/projects"): "list_projects",
    ("tasks", "GET", "/v1/projects/{project_id}"): "get_project",
    ("tasks", "PATCH", "/v1/projects/{project_id}"): "update_project",
    ("tasks", "POST", "/v1/projects/{project_id}/publish"): "publish_project",
    ("tasks", "POST", "/v1/projects/{project_id}/pause"): "pause_project",
    ("tasks", "POST", "/v1/projects/{project_id}/resume"): "resume_project",
    ("tasks", "POST", "/v1/projects/{project_id}/close"): "close_project",
    ("tasks", "POST", "/v1/projects/{project_id}/tasks"): "add_tasks",
    ("tasks", "GET", "/v1/projects/{project_id}/tasks"): "list_tasks",
    ("tasks", "GET", "/v1/tasks/{task_id}"): "get_task",
    ("tasks", "GET", "/v1/projects/{project_id}/results"): "export_results",
    ("tasks", "GET", "/v1/projects/{project_id}/workers"): "list_project_workers",
    ("tasks", "GET", "/v1/projects/{project_id}/assignments"): "list_project_assignments",
    ("tasks", "GET", "/v1/work/projects"): "list_work_projects",
    ("tasks", "GET", "/v1/work/projects/{project_id}"): "preview_work_project",
    ("tasks", "POST", "/v1/work/projects/{project_id}/accept"): "accept_work",
    ("tasks", "POST", "/v1/assignments/{assignment_id}/submit"): "submit_assignment",
    ("tasks", "POST", "/v1/assignments/{assignment_id}/return"): "return_assignment",
    ("tasks", "POST", "/v1/assignments/{assignment_id}/approve"): "approve_assignment",
    ("tasks", "POST", "/v1/assignments/{assignment_id}/reject"): "reject_assignment",
    ("tasks", "POST", "/v1/assignments/review"): "review_assignments",
    ("tasks", "GET", "/v1/workers/me/assignments"): "list_my_assignments",
    ("tasks", "GET", "/v1/projects/{project_id}/label-studio/config"): "get_label_studio_config",
    ("tasks", "POST", "/v1/projects/{project_id}/label-studio/tasks"): "import_label_studio_tasks",
    ("workers", "GET", "/healthz"): "workers_healthz",
    ("workers", "GET", "/readyz"): "workers_readyz",
    ("workers", "POST", "/v1/accounts"): "create_account",
    ("workers", "GET", "/v1/accounts/me"): "get_my_account",
    ("workers", "POST", "/v1/accounts/me/api-keys"): "create_api_key",
    ("workers", "GET", "/v1/accounts/me/api-keys"): "list_api_keys",
    ("workers", "DELETE", "/v1/accounts/me/api-keys/{key_id}"): "revoke_api_key",
    ("workers", "GET", "/v1/workers/me"): "get_my_profile",
    ("workers", "PATCH", "/v1/workers/me"): "update_my_profile",
    ("workers", "GET", "/v1/workers/me/qualifications"): "list_my_qualifications",
    ("workers", "GET", "/v1/workers/{worker_id}"): "get_worker",
    ("workers", "POST", "/v1/qualification-types"): "create_qualification_type",
    ("workers", "GET", "/v1/qualification-types"): "list_qualification_types",
    ("workers", "GET", "/v1/qualification-types/{type_id}"): "get_qualification_type",
    ("workers", "PATCH", "/v1/qualification-types/{type_id}"): "update_qualification_type",
    ("workers", "POST", "/v1/qualification-types/{type_id}/attempts"): (
        "start_qualification_attempt"
    ),
    ("workers", "GET", "/v1/qualification-attempts/{attempt_id}"): "get_qualification_attempt",
    ("workers", "POST", "/v1/qualification-attempts/{attempt_id}/submit"): (
        "submit_qualification_attempt"
    ),
    ("workers", "GET", "/v1/qualification-types/{type_id}/requests"): (
        "list_qualification_requests"
    ),
    ("workers", "GET", "/v1/qualification-requests/{request_id}"): "get_qualification_request",
    ("workers", "POST", "/v1/qualification-requests/{request_id}/accept"): (
        "accept_qualification_request"
    ),
    ("workers", "POST", "/v1/qualification-requests/{request_id}/reject"): (
        "reject_qualification_request"
    ),
    ("workers", "GET", "/v1/qualification-types/{type_id}/workers"): ("list_qualification_grants"),
    ("workers", "PUT", "/v1/qualification-types/{type_id}/workers/{worker_id}"): (
        "set_qualification_grant"
    ),
    ("workers", "DELETE", "/v1/qualification-types/{type_id}/workers/{worker_id}"): (
        "revoke_qualification_grant"
    ),
    ("workers", "POST", "/v1/blocks"): "block_worker",
    ("workers", "GET", "/v1/blocks"): "list_blocks",
    ("workers", "DELETE", "/v1/blocks/{worker_id}"): "unblock_worker",
    ("payments", "GET", "/healthz"): "payments_healthz",
    ("payments", "GET", "/readyz"): "payments_readyz",
    ("payments", "GET", "/v1/balance"): "get_balance",
    ("payments", "GET", "/v1/transactions"): "list_transactions",
    ("payments", "POST", "/v1/deposits"): "create_deposit",
    ("payments", "POST", "/v1/bonuses"): "create_bonus",
    ("payments", "GET", "/v1/earnings"): "get_earnings",
    ("payments", "POST", "/v1/withdrawals"): "create_withdrawal",
    ("payments", "GET", "/v1/withdrawals"): "list_withdrawals",
}

# Enum components (docs/api.md: stable names) and the least number of `$ref`s to each in a
# document: the ones used in several places must be one type, not several copies.
NAMED_ENUMS: dict[str, dict[str, int]] = {
    "tasks": {
        "AssignmentStatus": 3,
        "ProjectStatus": 1,
        "TaskType": 3,
        "TaskStatus": 2,
        "QualificationComparator": 1,
        "QualificationGuard": 1,
        "ReviewAction": 1,
        "ReviewItemStatus": 1,
        "ResultsFormat": 1,
        "HourlyRateBasis": 2,
        "LabelStudioGold": 1,
    },
    "workers": {
        "AccountKind": 2,
        "AttemptStatus": 2,
        "AttemptStartedStatus": 1,
        "AttemptSubmitStatus": 1,
        "QualificationRequestStatus": 1,
        "QualificationTypeStatus": 3,
        "QuestionKind": 1,
        "AnswerKeyMapping": 1,
        "GrantStatus": 2,
    },
    "payments": {
        "DepositStatus": 1,
        "WithdrawalStatus": 1,
        "TransactionKind": 1,
        "TransactionAccount": 1,
    },
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
LOGGING_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


@cache
def _app(service: str) -> FastAPI:
    urls = {s: f"http://127.0.0.1:9/{s}" for s in SERVICES}  # never called
    settings = make_settings(service, "postgresql://nobody@127.0.0.1:9/none", urls)
    return importlib.import_module(f"services.{service}.app").create_app(settings)


@cache
def _document(service: str) -> dict[str, Any]:
    return _app(service).openapi()


def _operations(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in _document(service)["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _refs(node: Any) -> Counter[str]:
    found: Counter[str] = Counter()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found[node["$ref"]] += 1
        for value in node.values():
            found += _refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _refs(value)
    return found


def _inline_enums(node: Any, where: str) -> list[str]:
    found = []
    if isinstance(node, dict):
        if "enum" in node:
            found.append(where)
        for key, value in node.items():
            found += _inline_enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _inline_enums(value, f"{where}/{i}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_valid_openapi(service: str) -> None:
    validate(_document(service))  # raises with the first offending place


@pytest.mark.parametrize("service", SERVICES)
def test_no_internal_paths_yet_internal_routes_are_served(service: str) -> None:
    paths = _document(service)["paths"]
    assert [p for p in paths if p.startswith("/internal")] == []
    assert all(p.startswith("/v1/") or p in ("/healthz", "/readyz") for p in paths), list(paths)
    served = {
        path
        for route in _app(service).routes
        if isinstance(path := getattr(route, "path", None), str)
    }
    if not any(p.startswith("/internal/") for p in served):  # routers included lazily
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]

        served = {getattr(r, "path", "") for r in iter_route_contexts(_app(service).routes)}
    assert any(p.startswith("/internal/") for p in served), "internal routes must stay served"


def test_operation_ids_are_unique_across_services_snake_case_and_stable() -> None:
    seen: dict[str, tuple[str, str, str]] = {}
    actual: dict[tuple[str, str, str], str] = {}
    for service in SERVICES:
        for method, path, operation in _operations(service):
            op_id = operation.get("operationId")
            where = (service, method, path)
            assert op_id and re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", op_id), (where, op_id)
            assert op_id not in seen, f"{op_id} is both {seen[op_id]} and {where}"
            seen[op_id] = where
            actual[where] = op_id
    changed = {k: (v, actual.get(k)) for k, v in OPERATION_IDS.items() if actual.get(k) != v}
    assert not changed, f"pinned operation ids changed or went missing: {changed}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_response_is_a_problem(service: str) -> None:
    for method, path, operation in _operations(service):
        for status, response in operation["responses"].items():
            if status[:1] not in ("4", "5"):
                continue
            assert response.get("content") == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}, (
                method,
                path,
                status,
            )


@pytest.mark.parametrize("service", SERVICES)
def test_503_and_429_document_retry_after(service: str) -> None:
    for method, path, operation in _operations(service):
        responses = operation["responses"]
        if path != "/healthz":
            assert "503" in responses, (method, path)
        for status in ("429", "503"):
            if status in responses:
                header = responses[status].get("headers", {}).get("Retry-After")
                assert header and header["schema"]["type"] == "integer", (method, path, status)
    # every operation that reads an API key can be rate limited
    for method, path, operation in _operations(service):
        if operation.get("security"):
            assert "429" in operation["responses"], (method, path)


def _problem_extra_keys() -> dict[str, str]:
    """Every member a service adds to a problem: the string keys of `extra={...}` given to an
    error (not to a logging call) anywhere in services/ and shared/."""
    keys: dict[str, str] = {}
    for file in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]:
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in LOGGING_METHODS:
                continue
            for kw in node.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    for key in kw.value.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            keys[key.value] = f"{file.relative_to(ROOT)}:{node.lineno}"
    return keys


def test_problem_schema_names_every_extra_member() -> None:
    extra = _problem_extra_keys()
    assert {"unmet_requirements", "retry_after", "retry_allowed_at", "gold_answered"} <= set(extra)
    for service in SERVICES:
        problem = _document(service)["components"]["schemas"]["Problem"]
        properties = problem["properties"]
        missing = {k: where for k, where in extra.items() if k not in properties}
        assert not missing, f"{service}: Problem does not document {missing}"
        assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
        for name, schema in properties.items():
            assert name in problem["required"] or schema.get("description"), name
    unmet = _document("tasks")["components"]["schemas"]["ProblemUnmetRequirement"]
    assert set(unmet["properties"]) >= {"qualification_type_id", "comparator", "reason", "guard"}


@pytest.mark.parametrize("service", SERVICES)
def test_enums_are_named_components_reused(service: str) -> None:
    doc = _document(service)
    components = doc["components"]["schemas"]
    inline = [
        where
        for where in _inline_enums(doc, "")
        if not re.fullmatch(r"/components/schemas/[^/]+", where)
    ]
    assert inline == [], f"inline enums (make them named aliases): {inline}"
    refs = _refs(doc)
    for name, least in NAMED_ENUMS[service].items():
        assert name in components, name
        assert "enum" in components[name] or "const" in components[name], name
        assert refs[f"#/components/schemas/{name}"] >= least, (name, refs[name])


def test_a_component_name_means_one_schema_in_every_document() -> None:
    by_name: dict[str, dict[str, Any]] = {}
    for service in SERVICES:
        for name, schema in _document(service)["components"]["schemas"].items():
            first = by_name.setdefault(name, {"service": service, "schema": schema})
            assert schema == first["schema"], f"{name}: {first['service']} and {service} differ"


def test_balance_is_a_discriminated_union_on_kind() -> None:
    doc = _document("payments")
    schema = doc["paths"]["/v1/balance"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert schema["discriminator"]["propertyName"] == "kind"
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {"requester", "worker"}
    for kind, ref in mapping.items():
        variant = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert variant["properties"]["kind"]["const"] == kind
        assert "kind" in variant["required"]
    assert {"available", "reserved", "spent"} <= set(
        doc["components"]["schemas"]["RequesterBalance"]["properties"]
    )
    assert {"pending", "available", "withdrawn"} <= set(
        doc["components"]["schemas"]["WorkerBalance"]["properties"]
    )


def test_results_export_has_a_record_schema() -> None:
    doc = _document("tasks")
    content = doc["paths"]["/v1/projects/{project_id}/results"]["get"]["responses"]["200"][
        "content"
    ]
    assert next(iter(content)) == "application/json"  # clients that pick one media type pick JSON
    assert content["application/json"]["schema"]["type"] == "array"
    assert content["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/ResultRecord"
    }
    for media_type in ("application/x-ndjson", "text/csv"):
        assert content[media_type]["schema"]["description"], media_type
    record = doc["components"]["schemas"]["ResultRecord"]
    assert set(record["required"]) == {"task_id", "external_id", "input", "answers", "aggregate"}
    answer = doc["components"]["schemas"]["ResultAnswer"]
    # worker_skill, confidence and method: only with `aggregation=` (not required).
    assert set(answer["properties"]) == {
        "assignment_id",
        "worker_id",
        "answer",
        "status",
        "worker_skill",
    }
    assert "worker_skill" not in answer["required"]
    aggregate = doc["components"]["schemas"]["ResultAggregate"]
    assert set(aggregate["properties"]) == {"answer", "agreement", "confidence", "method"}
    assert set(aggregate["required"]) == {"answer", "agreement"}


# openapi-python-client generates JSON, form, multipart and octet-stream bodies only, and one
# raw (octet-stream) body per operation: the CSV upload is generated as a raw body with this
# (documented) setting; the NDJSON form of the same operation is the one thing it skips.
GENERATOR_CONFIG = """\
content_type_overrides:
  text/csv: application/octet-stream
"""
KNOWN_GENERATOR_LIMITS = {
    "tasks": [
        "Warning(s) encountered while generating. Client was generated, but some pieces may be "
        "missing",
        "WARNING parsing POST /v1/projects/{project_id}/tasks within tasks.",
        "Unsupported content type application/x-ndjson",
    ]
}


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_python_client_generates_a_client_that_imports(
    service: str, tmp_path: Path
) -> None:
    bin_dir = Path(sys.executable).parent
    generator = bin_dir / "openapi-python-client"
    assert generator.exists(), "openapi-python-client is missing: pip install -e '.[dev]'"
    spec = tmp_path / f"{service}.json"
    spec.write_text(json.dumps(_document(service)))
    config = tmp_path / "config.yaml"
    config.write_text(GENERATOR_CONFIG)
    package = f"generated_{service}_client"
    started = time.monotonic()
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / package),
        ],
        cwd=tmp_path,
        # its post-hooks run ruff on the output: the venv's
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, output
    known = KNOWN_GENERATOR_LIMITS.get(service, [])
    lines = [line.strip() for line in output.splitlines()]
    assert all(line in lines for line in known), f"a known limit went away: drop it\n{output}"
    complaints = [
        line
        for line in lines
        if line not in known
        and re.search(r"warning|error|unsupported|skipping|could not", line, re.I)
    ]
    assert not complaints, f"the generator complained about the document:\n{output}"
    assert time.monotonic() - started < 60

    sys.path.insert(0, str(tmp_path))
    try:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            importlib.import_module(module.name)
        models = importlib.import_module(f"{package}.models")
        problem = models.Problem.from_dict(
            {
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "Too many requests.",
                "code": "rate_limited",
                "retry_after": 3,
            }
        )
        assert problem.retry_after == 3
        if service == "payments":
            worker = {"kind": "worker", "pending": "0.00", "available": "1.10"}
            worker |= {"withdrawn": "0.00", "withdrawing": "0.00"}
            with pytest.raises(ValueError):
                models.RequesterBalance.from_dict(dict(worker))
            assert models.WorkerBalance.from_dict(dict(worker)).available == "1.10"
        if service == "tasks":
            assert models.AssignmentStatus("approved").value == "approved"
            upload = importlib.import_module(f"{package}.api.tasks.add_tasks")
            csv = importlib.import_module(f"{package}.types").File(payload=b"text\nhello\n")
            kwargs = upload._get_kwargs("P1", body=csv)
            assert kwargs["content"] == b"text\nhello\n"
            assert kwargs["headers"]["Content-Type"] == "text/csv"
            record = models.ResultRecord.from_dict(
                {
                    "task_id": "T1",
                    "external_id": None,
                    "input": {"text": "a cat"},
                    "answers": [
                        {
                            "assignment_id": "A1",
                            "worker_id": "W1",
                            "answer": {"label": "cat"},
                            "status": "approved",
                        }
                    ],
                    "aggregate": {"answer": {"label": "cat"}, "agreement": 1.0},
                }
            )
            assert record.answers[0].status == models.AssignmentStatus.APPROVED
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]
