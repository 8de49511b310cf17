"""Object-level authorization (OWASP API1), walked over the real route tables.

For every public route with a path id, the id of one of A's or W's objects is sent by the foreign
account of the right role (B or V). The answer must be exactly the answer for an id that does
not exist (404 and the same `code`): a 403 or a 200 would tell the caller the object exists.
A route whose path parameter the test does not know fails the test, so a new route cannot dodge
it; a route that is public by contract is listed below, with the reason, and checked with the
variant of the object that must stay hidden (a draft project, an inactive type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.security.conftest import World
from tests.security.routes import _PARAM, RouteInfo, iter_routes

MISSING_ID = "NOPE0000000000000000000000"

# Path parameter name -> the world's object (A's or W's) that the foreigner must not reach.
PARAM_OBJECTS: dict[str, Callable[[World], str]] = {
    "project_id": lambda w: w.project_id,
    "task_id": lambda w: w.task_ids[0],
    "assignment_id": lambda w: w.submitted_assignment_id,
    "type_id": lambda w: w.type_id,
    "attempt_id": lambda w: w.attempt_id,
    "request_id": lambda w: w.request_id,
    "worker_id": lambda w: w.worker.id,
    "session_id": lambda w: w.extra_ids["session_id"],
    "timesheet_id": lambda w: w.extra_ids["timesheet_id"],
    "run_id": lambda w: w.aggregation_run_id,
    "message_id": lambda w: w.extra_ids["message_id"],
    "access_key_id": lambda w: w.extra_ids["access_key_id"],
    # key_id is per caller: see _key_ids (each foreigner tries both A's and W's keys).
}

# Routes that are public by contract for some objects; the test sends the object variant that
# must stay hidden instead.
HIDDEN_VARIANT: dict[tuple[str, str], dict[str, Callable[[World], str]]] = {
    # "GET /v1/qualification-types/{id}": anyone sees *active* types (the contract's catalog);
    # an inactive type of someone else must look missing.
    ("GET", "/v1/qualification-types/{type_id}"): {"type_id": lambda w: w.inactive_type_id},
    # Any worker may request any active qualification; not an inactive one.
    ("POST", "/v1/qualification-types/{type_id}/attempts"): {
        "type_id": lambda w: w.inactive_type_id
    },
    # The worker-facing marketplace shows every published project; a draft must look missing.
    ("GET", "/v1/work/projects/{project_id}"): {"project_id": lambda w: w.draft_project_id},
    ("POST", "/v1/work/projects/{project_id}/accept"): {"project_id": lambda w: w.draft_project_id},
    ("POST", "/v1/work/projects/{project_id}/sessions"): {
        "project_id": lambda w: w.draft_project_id
    },
}

# Routes whose path id is public by contract, so no hidden variant exists.
PUBLIC_BY_CONTRACT = {
    # "GET /v1/workers/{worker_id} | requester | public profile + stats": any requester may look
    # at any worker (that is how requesters pick whom to qualify or block).
    ("GET", "/v1/workers/{worker_id}"),
}

# Where `worker_id` in the path is a reference to any worker rather than an object owned by
# the caller: ownership is decided by the other parameter (A's type) or by the caller's own
# rows (B has no block on W), so the real ids must still answer like missing ones.
# Listed so a reader sees these were considered; the test handles them like every other route.
WORKER_ID_IS_A_REFERENCE = {
    ("PUT", "/v1/qualification-types/{type_id}/workers/{worker_id}"),
    ("DELETE", "/v1/qualification-types/{type_id}/workers/{worker_id}"),
    ("DELETE", "/v1/blocks/{worker_id}"),
}

# A valid body per write route with a path id, so the request gets past validation and reaches
# the ownership check. A new write route without a sample fails the test.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/projects/{project_id}"): {"description": "changed by a stranger"},
    ("POST", "/v1/projects/{project_id}/tasks"): {"tasks": [{"input": {"text": "x"}}]},
    ("POST", "/v1/projects/{project_id}/label-studio/tasks"): [{"data": {"text": "x"}}],
    ("POST", "/v1/assignments/{assignment_id}/submit"): {"answer": {"label": "cat"}},
    ("POST", "/v1/assignments/{assignment_id}/approve"): {"feedback": "fine"},
    ("POST", "/v1/assignments/{assignment_id}/reject"): {"feedback": "not what was asked at all"},
    ("POST", "/v1/assignments/{assignment_id}/appeal"): {"message": "It was right, look again."},
    ("POST", "/v1/assignments/{assignment_id}/appeal/overturn"): {"feedback": "fine"},
    ("POST", "/v1/assignments/{assignment_id}/appeal/uphold"): {"reason": "It stays rejected."},
    ("PUT", "/v1/qualification-types/{type_id}/workers/{worker_id}"): {"value": 1},
    ("DELETE", "/v1/qualification-types/{type_id}/workers/{worker_id}"): None,
    ("PATCH", "/v1/qualification-types/{type_id}"): {"description": "changed by a stranger"},
    ("POST", "/v1/qualification-attempts/{attempt_id}/submit"): {"answers": {"q1": "a"}},
    ("POST", "/v1/qualification-requests/{request_id}/accept"): {"value": 1},
    ("POST", "/v1/qualification-requests/{request_id}/reject"): {"reason": "no"},
    ("POST", "/v1/work/sessions/{session_id}/dispute-response"): {"response": "I worked."},
    ("POST", "/v1/tasks/{task_id}/additional-assignments"): {"count": 1},
    ("PATCH", "/v1/tasks/{task_id}"): {"expires_at": "2020-01-01T00:00:00Z"},
    (
        "POST",
        "/v1/projects/{project_id}/timesheets/{timesheet_id}/sessions/{session_id}/dispute",
    ): {"reason": "Nothing was submitted."},
}


def _callers(info: RouteInfo, world: World) -> list[tuple[str, dict[str, str]]]:
    b = ("B (foreign requester)", world.foreign_requester.headers)
    v = ("V (foreign worker)", world.foreign_worker.headers)
    return {
        "requester": [b],
        "worker": [v],
        "any": [b, v],
        "optional": [b, v, ("anonymous", {})],
        "none": [b, v, ("anonymous", {})],
    }[info.auth]


def _params(path: str) -> list[str]:
    return [m.group(1) for m in _PARAM.finditer(path)]


def _fill(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values[m.group(1)], path)


def _needs_body(info: RouteInfo) -> bool:
    extra = (info.route.openapi_extra or {}).get("requestBody", {})
    return any(p.field_info.is_required() for p in info.route.dependant.body_params) or bool(
        extra.get("required")
    )


def _object_routes(apps: dict) -> list[RouteInfo]:
    return [
        info for info in iter_routes(apps) if info.path.startswith("/v1/") and _params(info.path)
    ]


async def _send(
    client: httpx.AsyncClient, info: RouteInfo, url: str, headers: dict[str, str]
) -> httpx.Response:
    key = (info.method, info.path)
    kwargs: dict[str, Any] = {"headers": headers}
    if key in BODIES and BODIES[key] is not None:
        kwargs["json"] = BODIES[key]
    return await client.request(info.method, url, **kwargs)


def _key_ids(world: World) -> list[str]:
    return [world.requester_key_id, world.worker_key_id]


async def test_foreign_objects_answer_exactly_like_missing_ones(
    apps: dict, clients: dict[str, httpx.AsyncClient], world: World, db
) -> None:
    from tests.security.conftest import db_snapshot

    unknown: list[str] = []
    leaks: list[str] = []
    checked = 0
    before = await db_snapshot(db)
    for info in _object_routes(apps):
        key = (info.method, info.path)
        if key in PUBLIC_BY_CONTRACT:
            continue
        if _needs_body(info) and key not in BODIES:
            unknown.append(f"{info.method} {info.path}: add a valid body to BODIES")
            continue
        mapping = {**PARAM_OBJECTS, **HIDDEN_VARIANT.get(key, {})}
        names = _params(info.path)
        missing_names = [n for n in names if n not in mapping and n != "key_id"]
        if missing_names:
            unknown.append(f"{info.method} {info.path}: no world object for {missing_names}")
            continue
        variants = [{"key_id": k} for k in _key_ids(world)] if "key_id" in names else [{}]
        for caller, headers in _callers(info, world):
            for variant in variants:
                real = {n: variant.get(n) or mapping[n](world) for n in names}
                missing = {n: MISSING_ID for n in names}
                client = clients[info.service]
                as_missing = await _send(client, info, _fill(info.path, missing), headers)
                as_foreign = await _send(client, info, _fill(info.path, real), headers)
                assert as_missing.status_code == 404, (
                    f"{info.method} {info.path} as {caller} with a missing id answered "
                    f"{as_missing.status_code} {as_missing.text}: the request does not reach "
                    "the ownership check (fix BODIES?)"
                )
                if as_foreign.status_code != 404 or (
                    as_foreign.json().get("code") != as_missing.json().get("code")
                ):
                    leaks.append(
                        f"{info.method} {_fill(info.path, real)} as {caller}: "
                        f"{as_foreign.status_code} {as_foreign.text[:200]} "
                        f"(missing id: 404 {as_missing.json().get('code')})"
                    )
                checked += 1
    assert not unknown, "routes the object-level test cannot cover:\n" + "\n".join(unknown)
    assert not leaks, "foreign objects distinguishable from missing ones:\n" + "\n".join(leaks)
    assert checked >= 20, checked
    assert await db_snapshot(db) == before, "a foreign call changed the database"


async def test_public_profile_is_the_only_path_id_a_stranger_reads(
    clients: dict[str, httpx.AsyncClient], world: World
) -> None:
    """The allow-listed routes really are public (else the allow-list hides a broken test) and
    the hidden variants really are visible to their owner (else the 404s above prove nothing)."""
    resp = await clients["workers"].get(
        f"/v1/workers/{world.worker.id}", headers=world.foreign_requester.headers
    )
    assert resp.status_code == 200, resp.text
    assert "email" not in resp.json()
    owner_sees = [
        ("workers", f"/v1/qualification-types/{world.inactive_type_id}", world.requester),
        ("tasks", f"/v1/projects/{world.draft_project_id}", world.requester),
        ("tasks", f"/v1/projects/{world.project_id}", world.requester),
        ("tasks", f"/v1/tasks/{world.task_ids[0]}", world.requester),
        ("workers", f"/v1/qualification-attempts/{world.attempt_id}", world.worker),
        ("workers", f"/v1/qualification-requests/{world.request_id}", world.requester),
        ("workers", f"/v1/qualification-types/{world.type_id}/workers", world.requester),
    ]
    for service, url, owner in owner_sees:
        resp = await clients[service].get(url, headers=owner.headers)
        assert resp.status_code == 200, (url, resp.text)


async def test_ids_in_bodies_are_checked_like_ids_in_paths(
    clients: dict[str, httpx.AsyncClient], world: World, db
) -> None:
    """A bonus on A's assignment or a review of it by B looks like one on a missing assignment."""
    from tests.security.conftest import db_snapshot

    before = await db_snapshot(db)
    b = world.foreign_requester
    await clients["payments"].post("/v1/deposits", json={"amount": "10.00"}, headers=b.headers)
    after_deposit = await db_snapshot(db)
    answers = []
    for assignment_id in (world.approved_assignment_id, MISSING_ID):
        resp = await clients["payments"].post(
            "/v1/bonuses",
            json={"assignment_id": assignment_id, "amount": "1.00", "reason": "thanks"},
            headers=b.headers,
        )
        answers.append((resp.status_code, resp.json().get("code")))
    assert answers[0] == answers[1] and answers[0][0] == 404, answers

    results = []
    for assignment_id in (world.submitted_assignment_id, MISSING_ID):
        resp = await clients["tasks"].post(
            "/v1/assignments/review",
            json={
                "approve": [{"id": assignment_id}],
                "reject": [{"id": assignment_id, "feedback": "not what was asked at all"}],
            },
            headers=b.headers,
        )
        assert resp.status_code == 200, resp.text
        results.append([(r["status"], r["code"]) for r in resp.json()["results"]])
    assert results[0] == results[1], results
    assert all(status == "error" for status, _ in results[0]), results
    assert before != after_deposit  # the snapshot sees real changes
    assert await db_snapshot(db) == after_deposit


# --- lists -------------------------------------------------------------------------------

# Catalogs that show other accounts' objects by contract, and which of the world's ids they may
# show to a stranger.
PUBLIC_IN_LISTS: dict[tuple[str, str], set[str]] = {
    # "GET /v1/qualification-types | anyone | active types": the active type and its owner.
    ("GET", "/v1/qualification-types"): {"type_id", "requester_id"},
    # "GET /v1/work/projects | worker": the marketplace lists published projects and requesters.
    ("GET", "/v1/work/projects"): {"project_id", "requester_id"},
}


async def test_no_list_shows_another_accounts_objects(
    apps: dict, clients: dict[str, httpx.AsyncClient], world: World
) -> None:
    secret = world.private_ids()
    lists = [
        i
        for i in iter_routes(apps)
        if i.method == "GET" and i.path.startswith("/v1/") and not _params(i.path)
    ]
    assert len(lists) >= 10, [i.path for i in lists]
    leaks = []
    for info in lists:
        allowed = PUBLIC_IN_LISTS.get((info.method, info.path), set())
        for caller, headers in _callers(info, world):
            resp = await clients[info.service].get(info.path, headers=headers)
            assert resp.status_code == 200, (info.path, caller, resp.text)
            text = resp.text
            for name, value in secret.items():
                if name not in allowed and value in text:
                    leaks.append(f"GET {info.path} as {caller} shows {name}={value}")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("service", "path", "who", "id_name"),
    [
        ("tasks", "/v1/projects", "requester", "project_id"),
        ("tasks", "/v1/workers/me/assignments", "worker", "submitted_assignment_id"),
        ("workers", "/v1/accounts/me/api-keys", "requester", "requester_key_id"),
        ("workers", "/v1/blocks", "requester", "worker_id"),
        ("workers", "/v1/workers/me/messages", "worker", "message_id"),
        ("payments", "/v1/withdrawals", "worker", "withdrawal_id"),
        ("payments", "/v1/transactions", "requester", "deposit_id"),
    ],
)
async def test_the_owner_does_see_its_objects_in_the_same_lists(
    clients: dict[str, httpx.AsyncClient], world: World, service, path, who, id_name
) -> None:
    """The probe above can fail: the same lists show the ids to their owners."""
    owner = world.requester if who == "requester" else world.worker
    resp = await clients[service].get(path, headers=owner.headers)
    assert resp.status_code == 200, resp.text
    assert world.private_ids()[id_name] in resp.text
