"""Projects: creation rules, reading with live counts, editing by state, ownership."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.projects import (
    add_tasks,
    create_project,
    image_tasks,
    insert_assignment,
    project_body,
    task_ids,
)

SYSTEM_COUNTRY = "00000000000000000071"
SYSTEM_APPROVAL_RATE = "000000000000000000L0"


async def test_create_returns_a_draft_with_every_contract_field(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    resp = await tasks_client.post(
        "/v1/projects",
        json=project_body(
            estimated_seconds_per_assignment=30,
            min_gold_accuracy=80,
            qualification_requirements=[
                {
                    "qualification_type_id": SYSTEM_COUNTRY,
                    "comparator": "in",
                    "values": ["us", "DE"],
                    "guard": "discover",
                },
                {
                    "qualification_type_id": SYSTEM_APPROVAL_RATE,
                    "comparator": "gte",
                    "values": [95],
                },
            ],
        ),
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
    project = resp.json()
    assert project["status"] == "draft"
    assert project["requester_id"] == requester.id
    assert project["reward"] == "0.25"
    assert project["fee_per_assignment"] == "0.05"  # 20% of 0.25
    assert project["assignments_per_task"] == 3
    assert project["auto_approve_seconds"] == 259200
    assert project["labels"] == ["cat", "dog", "bird"]
    assert project["answer_schema"]["properties"]["label"]["enum"] == ["cat", "dog", "bird"]
    assert project["qualification_requirements"][0]["values"] == ["US", "DE"]
    assert project["qualification_requirements"][1]["guard"] == "accept"
    assert project["counts"] == {
        "tasks": 0,
        "open_slots": 0,
        "accepted": 0,
        "submitted": 0,
        "approved": 0,
        "rejected": 0,
    }
    assert project["money"] == {"reserved": "0.00", "spent": "0.00"}
    assert project["published_at"] is None
    for field in (
        "id",
        "title",
        "description",
        "instructions",
        "keywords",
        "task_type",
        "lifetime_seconds",
        "assignment_duration_seconds",
        "estimated_seconds_per_assignment",
        "min_gold_accuracy",
        "created_at",
    ):
        assert field in project
    fetched = await tasks_client.get(f"/v1/projects/{project['id']}", headers=requester.headers)
    assert fetched.status_code == 200 and fetched.json() == project


async def test_large_batches_pay_the_higher_fee(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="1.00", assignments_per_task=10)
    assert project["fee_per_assignment"] == "0.40"
    tiny = await create_project(tasks_client, requester, reward="0.01")
    assert tiny["fee_per_assignment"] == "0.01"  # the minimum fee


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"instructions": "x" * 100_001}, "instructions"),
    ({"keywords": [f"k{i}" for i in range(21)]}, "keywords"),
    ({"keywords": ["x" * 51]}, "keywords"),
    ({"task_type": "poetry"}, "task_type"),
    ({"labels": None}, "labels"),
    ({"labels": ["only-one"]}, "labels"),
    ({"labels": ["a", "a"]}, "labels"),
    ({"labels": ["a", ""]}, "labels"),
    ({"labels": [f"l{i}" for i in range(101)]}, "labels"),
    ({"reward": "0.00"}, "reward"),
    ({"reward": 0.25}, "reward"),
    ({"reward": "0.255"}, "reward"),
    ({"assignments_per_task": 0}, "assignments_per_task"),
    ({"assignments_per_task": 101}, "assignments_per_task"),
    ({"assignment_duration_seconds": 29}, "assignment_duration_seconds"),
    ({"assignment_duration_seconds": 86_401}, "assignment_duration_seconds"),
    ({"lifetime_seconds": 59}, "lifetime_seconds"),
    ({"lifetime_seconds": 31_536_001}, "lifetime_seconds"),
    ({"auto_approve_seconds": 2_592_001}, "auto_approve_seconds"),
    ({"estimated_seconds_per_assignment": 0}, "estimated_seconds_per_assignment"),
    ({"min_gold_accuracy": 101}, "min_gold_accuracy"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"task_type": "sentiment"}, "labels"),  # labels are for classification / bounding_box
    ({"multi_label": True, "task_type": "transcription", "labels": None}, "multi_label"),
    ({"task_type": "free_form", "labels": None}, "answer_schema"),
    (
        {"task_type": "free_form", "labels": None, "answer_schema": {"type": "array"}},
        "answer_schema",
    ),
    (
        {"task_type": "free_form", "labels": None, "answer_schema": {"type": 12}},
        "answer_schema",
    ),
    ({"answer_schema": {"type": "object"}}, "answer_schema"),
    (
        {"qualification_requirements": [{"qualification_type_id": "NOPE", "comparator": "exists"}]},
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {"qualification_type_id": SYSTEM_APPROVAL_RATE, "comparator": "gte", "values": []}
            ]
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {
                    "qualification_type_id": SYSTEM_APPROVAL_RATE,
                    "comparator": "exists",
                    "values": [1],
                }
            ]
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {"qualification_type_id": SYSTEM_APPROVAL_RATE, "comparator": "in", "values": []}
            ]
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {"qualification_type_id": SYSTEM_COUNTRY, "comparator": "gt", "values": ["US"]}
            ]
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {"qualification_type_id": SYSTEM_COUNTRY, "comparator": "eq", "values": ["XX"]}
            ]
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {"qualification_type_id": SYSTEM_APPROVAL_RATE, "comparator": "exists"}
            ]
            * 11
        },
        "qualification_requirements",
    ),
    (
        {
            "qualification_requirements": [
                {
                    "qualification_type_id": SYSTEM_APPROVAL_RATE,
                    "comparator": "exists",
                    "guard": "always",
                }
            ]
        },
        "qualification_requirements",
    ),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_BODIES)
async def test_invalid_projects_are_422_and_create_nothing(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db,
    overrides: dict[str, Any],
    field: str,
) -> None:
    requester = await create_requester(workers_client)
    body = {**project_body(), **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    resp = await tasks_client.post("/v1/projects", json=body, headers=requester.headers)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["code"] == "validation_error"
    assert any(field in map(str, e["loc"]) for e in problem["errors"]), problem
    assert (
        await db.fetchval("SELECT count(*) FROM projects WHERE requester_id = $1", requester.id)
        == 0
    )


async def test_valid_task_types_and_their_answer_schemas(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    multi = await create_project(tasks_client, requester, multi_label=True)
    assert multi["answer_schema"]["properties"]["labels"]["minItems"] == 1
    sentiment = await create_project(tasks_client, requester, task_type="sentiment", labels=None)
    assert sentiment["answer_schema"]["properties"]["label"]["enum"] == [
        "positive",
        "negative",
        "neutral",
    ]
    text = await create_project(tasks_client, requester, task_type="transcription", labels=None)
    assert text["answer_schema"]["required"] == ["text"]
    boxes = await create_project(tasks_client, requester, task_type="bounding_box", labels=None)
    assert boxes["labels"] is None
    schema = {
        "type": "object",
        "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["rating"],
    }
    free = await create_project(
        tasks_client, requester, task_type="free_form", labels=None, answer_schema=schema
    )
    assert free["answer_schema"] == schema


async def test_requirements_must_name_an_active_type(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    owner = await create_requester(workers_client)
    resp = await workers_client.post(
        "/v1/qualification-types",
        json={"name": f"Skill {owner.id}", "description": "x", "keywords": [], "status": "active"},
        headers=owner.headers,
    )
    if resp.status_code == 404:
        pytest.skip("qualification types are not served by the workers service yet")
    assert resp.status_code == 201, resp.text
    type_id = resp.json()["id"]
    requirement = {"qualification_type_id": type_id, "comparator": "gte", "values": [50]}
    ok = await tasks_client.post(
        "/v1/projects",
        json=project_body(qualification_requirements=[requirement]),
        headers=requester.headers,
    )
    assert ok.status_code == 201, ok.text
    await db.execute("UPDATE qualification_types SET status = 'inactive' WHERE id = $1", type_id)
    refused = await tasks_client.post(
        "/v1/projects",
        json=project_body(qualification_requirements=[requirement]),
        headers=requester.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == [
        "body",
        "qualification_requirements",
        0,
        "qualification_type_id",
    ]
    string_value = await tasks_client.post(
        "/v1/projects",
        json=project_body(qualification_requirements=[{**requirement, "values": ["fifty"]}]),
        headers=requester.headers,
    )
    assert string_value.status_code == 422


async def test_workers_cannot_create_or_list_projects(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    resp = await tasks_client.post("/v1/projects", json=project_body(), headers=worker.headers)
    assert resp.status_code == 403
    assert (await tasks_client.get("/v1/projects", headers=worker.headers)).status_code == 403
    assert (await tasks_client.get("/v1/projects")).status_code == 401


async def test_someone_elses_project_is_404_everywhere(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    project = await create_project(tasks_client, owner)
    await add_tasks(tasks_client, owner, project["id"], image_tasks(1))
    pid = project["id"]
    calls = [
        ("GET", f"/v1/projects/{pid}", None),
        ("PATCH", f"/v1/projects/{pid}", {"title": "mine now"}),
        ("POST", f"/v1/projects/{pid}/publish", None),
        ("POST", f"/v1/projects/{pid}/pause", None),
        ("POST", f"/v1/projects/{pid}/resume", None),
        ("POST", f"/v1/projects/{pid}/close", None),
        ("POST", f"/v1/projects/{pid}/tasks", {"tasks": [{"input": {"x": 1}}]}),
        ("GET", f"/v1/projects/{pid}/tasks", None),
        ("GET", f"/v1/projects/{pid}/results", None),
        ("GET", f"/v1/tasks/{(await task_ids(db, pid))[0]}", None),
        ("GET", "/v1/projects/NO_SUCH_PROJECT", None),
    ]
    for method, path, body in calls:
        resp = await tasks_client.request(method, path, json=body, headers=other.headers)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["code"] == "not_found"
    row = await db.fetchrow("SELECT status, title FROM projects WHERE id = $1", pid)
    assert (row["status"], row["title"]) == ("draft", "Label animal photos")
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", pid) == 1


async def test_list_is_own_newest_first_and_paginated(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    other = await create_requester(workers_client)
    await create_project(tasks_client, other)
    created = [
        (await create_project(tasks_client, requester, title=f"P{i}"))["id"] for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await tasks_client.get("/v1/projects", params=params, headers=requester.headers)
        ).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


async def test_counts_and_money_are_live(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    from tests.fixtures.payments import deposit
    from tests.fixtures.projects import publish

    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="0.50")  # fee 0.10
    await add_tasks(tasks_client, requester, project["id"], image_tasks(4))
    await deposit(payments_client, requester, "100.00")
    published = await publish(tasks_client, requester, project["id"])
    assert published["counts"]["open_slots"] == 12
    assert published["money"] == {"reserved": "7.20", "spent": "0.00"}
    ids = await task_ids(db, project["id"])
    workers = [await create_worker(workers_client) for _ in range(4)]
    await insert_assignment(db, task_id=ids[0], worker_id=workers[0].id, status="accepted")
    await insert_assignment(
        db, task_id=ids[0], worker_id=workers[1].id, status="submitted", answer={"label": "cat"}
    )
    await insert_assignment(
        db, task_id=ids[1], worker_id=workers[2].id, status="approved", answer={"label": "dog"}
    )
    await insert_assignment(
        db, task_id=ids[1], worker_id=workers[3].id, status="rejected", answer={"label": "cat"}
    )
    body = (
        await tasks_client.get(f"/v1/projects/{project['id']}", headers=requester.headers)
    ).json()
    assert body["counts"] == {
        "tasks": 4,
        "open_slots": 9,
        "accepted": 1,
        "submitted": 1,
        "approved": 1,
        "rejected": 1,
    }
    # 9 open slots + 2 live assignments hold money; the approved one was spent
    assert body["money"] == {"reserved": "6.60", "spent": "0.60"}


async def test_patch_in_draft_changes_anything_and_recomputes_the_fee(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    resp = await tasks_client.patch(
        f"/v1/projects/{project['id']}",
        json={
            "title": "New title",
            "reward": "2.00",
            "assignments_per_task": 10,
            "labels": ["yes", "no"],
            "estimated_seconds_per_assignment": 45,
        },
        headers=requester.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["title"] == "New title" and body["reward"] == "2.00"
    assert body["fee_per_assignment"] == "0.80"
    assert body["answer_schema"]["properties"]["label"]["enum"] == ["yes", "no"]
    cleared = await tasks_client.patch(
        f"/v1/projects/{project['id']}",
        json={"estimated_seconds_per_assignment": None},
        headers=requester.headers,
    )
    assert cleared.json()["estimated_seconds_per_assignment"] is None
    for bad in ({"title": None}, {"reward": "0.00"}, {"labels": ["one"]}, {"nope": 1}):
        resp = await tasks_client.patch(
            f"/v1/projects/{project['id']}", json=bad, headers=requester.headers
        )
        assert resp.status_code == 422, (bad, resp.text)
    # switching to sentiment without clearing the labels is a cross-field error
    resp = await tasks_client.patch(
        f"/v1/projects/{project['id']}", json={"task_type": "sentiment"}, headers=requester.headers
    )
    assert resp.status_code == 422
    resp = await tasks_client.patch(
        f"/v1/projects/{project['id']}",
        json={"task_type": "sentiment", "labels": None},
        headers=requester.headers,
    )
    assert resp.status_code == 200 and resp.json()["task_type"] == "sentiment"


async def test_patch_refuses_a_format_that_breaks_uploaded_gold_answers(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [{"input": {"x": 1}, "gold_answer": {"label": "bird"}}],
    )
    resp = await tasks_client.patch(
        f"/v1/projects/{project['id']}", json={"labels": ["cat", "dog"]}, headers=requester.headers
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "gold_answers_invalid"
    labels = await db.fetchval("SELECT labels::text FROM projects WHERE id = $1", project["id"])
    assert "bird" in labels


async def test_create_is_idempotent_with_a_key(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    headers = {**requester.headers, "Idempotency-Key": "create-1"}
    first, second = await asyncio.gather(
        tasks_client.post("/v1/projects", json=project_body(), headers=headers),
        tasks_client.post("/v1/projects", json=project_body(), headers=headers),
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    count = await db.fetchval("SELECT count(*) FROM projects WHERE requester_id = $1", requester.id)
    assert count == 1
    changed = await tasks_client.post(
        "/v1/projects", json=project_body(title="Other"), headers=headers
    )
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"
