"""Mass assignment (OWASP API3): a body can only carry the fields its model declares.

Every write route is called by its owner with a valid body plus one field the model does not
have (a status, a balance, a counter, an owner): the answer is 422 naming exactly that field, and
the database is unchanged. A write route without a valid sample body here fails the test, so a
new route is covered the day it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import unique_email
from tests.security.conftest import World, db_snapshot
from tests.security.routes import FOREIGN_FORMATS, RouteInfo, iter_routes

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}

# Fields an attacker would like to set; each route is tried with those its model lacks.
TEMPTING_FIELDS: dict[str, Any] = {
    "status": "approved",
    "balance": "1000000.00",
    "available": "1000000.00",
    "reserved": "0.00",
    "approved_count": 10_000,
    "approval_rate": 100,
    "value": 100,
    "requester_id": "SOMEONE",
    "owner_id": "SOMEONE",
    "worker_id": "SOMEONE",
    "id": "CHOSEN",
    "fee_per_assignment": "0.00",
    "key_hash": "00",
}

VALID_BODIES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("POST", "/v1/projects"): lambda w: {
        "title": "t",
        "task_type": "sentiment",
        "reward": "0.10",
        "assignment_duration_seconds": 60,
        "lifetime_seconds": 3600,
    },
    ("PATCH", "/v1/projects/{project_id}"): lambda w: {"description": "new"},
    ("POST", "/v1/projects/{project_id}/tasks"): lambda w: {"tasks": [{"input": {"t": 1}}]},
    ("POST", "/v1/assignments/{assignment_id}/submit"): lambda w: {"answer": {"label": "cat"}},
    ("POST", "/v1/assignments/review"): lambda w: {"approve": [{"id": w.submitted_assignment_id}]},
    ("POST", "/v1/assignments/{assignment_id}/approve"): lambda w: {"feedback": "ok"},
    ("POST", "/v1/assignments/{assignment_id}/reject"): lambda w: {
        "feedback": "not what was asked at all"
    },
    ("POST", "/v1/assignments/{assignment_id}/appeal"): lambda w: {
        "message": "It was right, look again."
    },
    ("POST", "/v1/assignments/{assignment_id}/appeal/overturn"): lambda w: {"feedback": "ok"},
    ("POST", "/v1/assignments/{assignment_id}/appeal/uphold"): lambda w: {
        "reason": "It stays rejected."
    },
    ("POST", "/v1/accounts"): lambda w: {
        "kind": "worker",
        "name": "n",
        "email": unique_email("mass"),
    },
    ("POST", "/v1/accounts/me/api-keys"): lambda w: {"name": "k"},
    ("PUT", "/v1/qualification-types/{type_id}/workers/{worker_id}"): lambda w: {"value": 1},
    ("DELETE", "/v1/qualification-types/{type_id}/workers/{worker_id}"): lambda w: {"reason": "r"},
    ("PATCH", "/v1/workers/me"): lambda w: {"bio": "hello"},
    ("POST", "/v1/qualification-types"): lambda w: {"name": "mass-assignment"},
    ("PATCH", "/v1/qualification-types/{type_id}"): lambda w: {"description": "new"},
    ("POST", "/v1/qualification-attempts/{attempt_id}/submit"): lambda w: {"answers": {"q1": "a"}},
    ("POST", "/v1/qualification-requests/{request_id}/accept"): lambda w: {"value": 1},
    ("POST", "/v1/qualification-requests/{request_id}/reject"): lambda w: {"reason": "no"},
    ("POST", "/v1/blocks"): lambda w: {"worker_id": w.foreign_worker.id, "reason": "r"},
    ("POST", "/v1/work/sessions/{session_id}/dispute-response"): lambda w: {"response": "r"},
    (
        "POST",
        "/v1/projects/{project_id}/timesheets/{timesheet_id}/sessions/{session_id}/dispute",
    ): lambda w: {"reason": "r"},
    ("POST", "/internal/workers/{worker_id}/eligibility"): lambda w: {
        "projects": [{"project_id": w.project_id, "requester_id": w.requester.id}]
    },
    ("POST", "/v1/deposits"): lambda w: {"amount": "1.00"},
    ("POST", "/v1/bonuses"): lambda w: {
        "assignment_id": w.approved_assignment_id,
        "amount": "0.10",
        "reason": "r",
    },
    ("POST", "/v1/withdrawals"): lambda w: {"amount": "1.00"},
    ("POST", "/internal/reservations"): lambda w: {
        "key": "mass:r",
        "requester_id": w.requester.id,
        "project_id": w.project_id,
        "amount_cents": 1,
    },
    ("POST", "/internal/payouts"): lambda w: {
        "key": "mass:p",
        "requester_id": w.requester.id,
        "project_id": w.project_id,
        "task_id": w.task_ids[0],
        "assignment_id": w.submitted_assignment_id,
        "worker_id": w.worker.id,
        "reward_cents": 1,
        "fee_cents": 1,
        "source": "reserved",
    },
    ("POST", "/internal/payouts/batch"): lambda w: {
        "payouts": [
            {
                "key": "mass:pb",
                "requester_id": w.requester.id,
                "project_id": w.project_id,
                "task_id": w.task_ids[0],
                "assignment_id": w.submitted_assignment_id,
                "worker_id": w.worker.id,
                "reward_cents": 1,
                "fee_cents": 1,
                "source": "reserved",
            }
        ]
    },
    ("POST", "/internal/releases"): lambda w: {
        "key": "mass:l",
        "requester_id": w.requester.id,
        "project_id": w.project_id,
        "amount_cents": 1,
    },
    # Task changes and worker messages (services/tasks/task_changes, services/workers/messages).
    ("POST", "/v1/tasks/{task_id}/additional-assignments"): lambda w: {"count": 1},
    ("PATCH", "/v1/tasks/{task_id}"): lambda w: {
        "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()
    },
    ("POST", "/v1/workers/messages"): lambda w: {
        "worker_ids": [w.worker.id],
        "subject": "s",
        "body": "b",
    },
    ("POST", "/internal/requesters/{requester_id}/worker-messages"): lambda w: {
        "worker_ids": [w.worker.id],
        "subject": "s",
        "body": "b",
    },
    # The MTurk door's calls on a requester's behalf (SendBonus, CreateWorkerBlock).
    ("POST", "/internal/bonuses"): lambda w: {
        "key": "mass:b",
        "requester_id": w.requester.id,
        "assignment_id": w.approved_assignment_id,
        "amount_cents": 1,
        "reason": "r",
    },
    # The door's qualification operations (CreateQualificationType, Associate..., Disassociate...).
    ("POST", "/internal/requesters/{requester_id}/qualification-types"): lambda w: {
        "type": {"name": "mass assignment door type"}
    },
    (
        "PUT",
        "/internal/requesters/{requester_id}/qualification-types/{type_id}/workers/{worker_id}",
    ): lambda w: {"value": 5},
    (
        "POST",
        "/internal/requesters/{requester_id}/qualification-types/{type_id}/workers/{worker_id}"
        "/revoke",
    ): lambda w: {"reason": "r"},
    ("POST", "/internal/requesters/{requester_id}/blocks"): lambda w: {
        "worker_id": w.foreign_worker.id,
        "reason": "r",
    },
    ("POST", "/internal/top-ups"): lambda w: {
        "key": "mass:t",
        "requester_id": w.requester.id,
        "project_id": w.project_id,
        "task_id": w.task_ids[0],
        "assignment_id": w.submitted_assignment_id,
        "worker_id": w.worker.id,
        "amount_cents": 1,
        "fee_cents": 1,
        "source": "reserved",
    },
    ("POST", "/internal/qualification-grants"): lambda w: {
        "key": "mass:g",
        "qualification_type_id": w.type_id,
        "worker_id": w.worker.id,
        "requester_id": w.requester.id,
        "project_id": w.project_id,
        "value": 50,
    },
}

PATH_VALUES: dict[str, Callable[[World], str]] = {
    "project_id": lambda w: w.draft_project_id,
    "assignment_id": lambda w: w.accepted_assignment_id,
    "type_id": lambda w: w.type_id,
    "worker_id": lambda w: w.worker.id,
    "attempt_id": lambda w: w.attempt_id,
    "request_id": lambda w: w.request_id,
    "session_id": lambda w: w.extra_ids["session_id"],
    "timesheet_id": lambda w: w.extra_ids["timesheet_id"],
    "task_id": lambda w: w.task_ids[0],
    "requester_id": lambda w: w.requester.id,
}


def _body_fields(info: RouteInfo) -> set[str] | None:
    """The top-level fields the route's body accepts; None for a route without a body."""
    for param in info.route.dependant.body_params:
        annotation = param.field_info.annotation
        for model in getattr(annotation, "__args__", (annotation,)):
            if isinstance(model, type) and issubclass(model, BaseModel):
                return {f.alias or name for name, f in model.model_fields.items()}
    extra = (info.route.openapi_extra or {}).get("requestBody", {})
    schema = extra.get("content", {}).get("application/json", {}).get("schema")
    if schema:
        return set(schema.get("properties", {}))
    return None


def _headers(info: RouteInfo, world: World) -> dict[str, str]:
    return {
        "requester": world.requester.headers,
        "worker": world.worker.headers,
        "any": world.requester.headers,
        "optional": world.requester.headers,
        "none": {},
        "internal": INTERNAL,
    }[info.auth]


def _url(info: RouteInfo, world: World) -> str:
    from tests.security.routes import _PARAM

    return _PARAM.sub(lambda m: PATH_VALUES[m.group(1)](world), info.path)


async def _expect_only_field_refused(
    client: httpx.AsyncClient, method: str, url: str, headers, body: dict, loc: list
) -> str | None:
    resp = await client.request(method, url, json=body, headers=headers)
    if resp.status_code != 422:
        return f"{method} {url} with {loc}: {resp.status_code} {resp.text[:300]}"
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "validation_error", problem
    errors = problem["errors"]
    if len(errors) == 1 and _same_place(errors[0], loc):
        return None
    return f"{method} {url}: expected only {loc} refused, got {errors}"


def _same_place(error: dict, loc: list) -> bool:
    """The task uploader (which also parses CSV and NDJSON) reports places without the "body"
    prefix and per row (`["tasks", 0]`, msg "status: ..."); the kit reports the full path."""
    if error["loc"] == loc:
        return True
    *row, field = loc[1:]
    return error["loc"] in (loc[1:], row) and (error["loc"] == loc[1:] or field in error["msg"])


async def test_every_write_refuses_fields_its_model_lacks(
    apps: dict, clients: dict[str, httpx.AsyncClient], world: World, db
) -> None:
    problems: list[str] = []
    tried = 0
    before = await db_snapshot(db)
    for info in iter_routes(apps):
        if info.method not in {"POST", "PUT", "PATCH", "DELETE"}:
            continue
        fields = _body_fields(info)
        if fields is None:
            continue  # no body: nothing to smuggle a field into
        key = (info.method, info.path)
        if key in FOREIGN_FORMATS:
            continue
        if key not in VALID_BODIES:
            problems.append(f"{info.method} {info.path}: add a valid body to VALID_BODIES")
            continue
        url = _url(info, world)
        valid = VALID_BODIES[key](world)
        for name, value in TEMPTING_FIELDS.items():
            if name in fields:
                continue
            tried += 1
            problem = await _expect_only_field_refused(
                clients[info.service],
                info.method,
                url,
                _headers(info, world),
                {**valid, name: value},
                ["body", name],
            )
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)
    assert tried > 100, tried
    assert await db_snapshot(db) == before


@pytest.mark.parametrize(
    ("method", "path_of", "body", "loc"),
    [
        # a task row cannot arrive already completed, or as gold by fiat
        (
            "POST",
            lambda w: f"/v1/projects/{w.draft_project_id}/tasks",
            {"tasks": [{"input": {"t": 1}, "status": "completed"}]},
            ["body", "tasks", 0, "status"],
        ),
        # a bulk review item carries no status or reward of its own
        (
            "POST",
            "/v1/assignments/review",
            {"approve": [{"id": "X", "reward": "100.00"}]},
            ["body", "approve", 0, "reward"],
        ),
        # a requirement cannot smuggle a grant
        (
            "POST",
            "/v1/projects",
            {
                "title": "t",
                "task_type": "sentiment",
                "reward": "0.10",
                "assignment_duration_seconds": 60,
                "lifetime_seconds": 3600,
                "qualification_requirements": [
                    {
                        "qualification_type_id": "00000000000000000040",
                        "comparator": "gte",
                        "values": [1],
                        "granted": True,
                    }
                ],
            },
            ["body", "qualification_requirements", 0, "granted"],
        ),
    ],
)
async def test_nested_objects_refuse_unknown_fields_too(
    clients: dict[str, httpx.AsyncClient], world: World, db, method, path_of, body, loc
) -> None:
    path = path_of(world) if callable(path_of) else path_of
    before = await db_snapshot(db)
    problem = await _expect_only_field_refused(
        clients["tasks"], method, path, world.requester.headers, body, loc
    )
    assert problem is None, problem
    assert await db_snapshot(db) == before


async def test_a_worker_cannot_set_its_stats_qualifications_or_balance(
    clients: dict[str, httpx.AsyncClient], world: World, db
) -> None:
    """Nothing W can send changes what W's profile, qualifications and balance say."""
    w = world.worker
    profile = (await clients["workers"].get("/v1/workers/me", headers=w.headers)).json()
    quals = (await clients["workers"].get("/v1/workers/me/qualifications", headers=w.headers)).text
    money = (await clients["payments"].get("/v1/balance", headers=w.headers)).json()
    before = await db_snapshot(db)
    attempts = [
        ("workers", "PATCH", "/v1/workers/me", {"approved_count": 999}),
        ("workers", "PATCH", "/v1/workers/me", {"approval_rate": 100, "bio": "x"}),
        ("workers", "PATCH", "/v1/workers/me", {"qualifications": {world.type_id: 100}}),
        ("workers", "PATCH", "/v1/workers/me", {"available": "1000.00"}),
        # granting is the owner's: W gets 403 on the owner's route, whatever the body
        (
            "workers",
            "PUT",
            f"/v1/qualification-types/{world.type_id}/workers/{w.id}",
            {"value": 100},
        ),
        ("workers", "POST", f"/v1/qualification-requests/{world.request_id}/accept", {}),
        ("payments", "POST", "/v1/deposits", {"amount": "1000.00"}),
        ("payments", "POST", "/v1/withdrawals", {"amount": "1.00", "status": "paid"}),
    ]
    for service, method, path, body in attempts:
        resp = await clients[service].request(method, path, json=body, headers=w.headers)
        assert resp.status_code in (403, 422), (path, body, resp.status_code, resp.text)
    assert await db_snapshot(db) == before
    assert (await clients["workers"].get("/v1/workers/me", headers=w.headers)).json() == profile
    assert (
        await clients["workers"].get("/v1/workers/me/qualifications", headers=w.headers)
    ).text == quals
    assert (await clients["payments"].get("/v1/balance", headers=w.headers)).json() == money


async def test_a_requester_cannot_set_money_or_states(
    clients: dict[str, httpx.AsyncClient], world: World, db
) -> None:
    a = world.requester
    project = (
        await clients["tasks"].get(f"/v1/projects/{world.project_id}", headers=a.headers)
    ).json()
    before = await db_snapshot(db)
    for body in (
        {"status": "closed"},
        {"status": "published"},
        {"money": {"reserved": "0.00", "spent": "0.00"}},
        {"fee_per_assignment": "0.00"},
        {"counts": {"tasks": 0}},
        {"published_at": None},
        {"requester_id": world.foreign_requester.id},
    ):
        for project_id in (world.project_id, world.draft_project_id):
            resp = await clients["tasks"].patch(
                f"/v1/projects/{project_id}", json=body, headers=a.headers
            )
            assert resp.status_code == 422, (body, resp.text)
    for path, body in (
        (f"/v1/assignments/{world.submitted_assignment_id}/approve", {"reward": "100.00"}),
        (f"/v1/assignments/{world.submitted_assignment_id}/approve", {"status": "approved"}),
        ("/v1/deposits", {"amount": "1.00", "status": "succeeded", "available": "999.00"}),
    ):
        service = "payments" if path == "/v1/deposits" else "tasks"
        resp = await clients[service].post(path, json=body, headers=a.headers)
        assert resp.status_code == 422, (path, body, resp.text)
    assert await db_snapshot(db) == before
    after = (
        await clients["tasks"].get(f"/v1/projects/{world.project_id}", headers=a.headers)
    ).json()
    assert after == project
