"""Task uploads: JSON, CSV and NDJSON bodies, broken rows, limits, money, idempotency, speed."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.accounts import create_requester
from tests.fixtures.payments import balance, deposit
from tests.fixtures.projects import add_tasks, create_project, image_tasks, publish


async def _count(db, project_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project_id)


async def test_json_upload_creates_tasks_in_order_with_defaults(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    body = {
        "tasks": [
            {"input": {"image_url": "a.jpg"}, "external_id": "row-a"},
            {"input": {"image_url": "b.jpg"}, "gold_answer": {"label": "dog"}},
            {"input": {"image_url": "c.jpg"}, "max_assignments": 7},
        ]
    }
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks", json=body, headers=requester.headers
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["created"] == 3 and len(created["task_ids"]) == 3
    assert created["task_ids"] == sorted(created["task_ids"])  # ids sort in upload order
    rows = await db.fetch(
        "SELECT id, external_id, input, gold_answer, max_assignments, open_slots, expires_at, "
        "status FROM tasks WHERE project_id = $1 ORDER BY id",
        project["id"],
    )
    assert [r["id"] for r in rows] == created["task_ids"]
    assert [orjson.loads(r["input"])["image_url"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert rows[0]["external_id"] == "row-a"
    assert orjson.loads(rows[1]["gold_answer"]) == {"label": "dog"}
    assert [r["max_assignments"] for r in rows] == [3, 3, 7]
    assert [r["open_slots"] for r in rows] == [3, 3, 7]
    assert all(r["expires_at"] is None and r["status"] == "open" for r in rows)  # draft

    task = (await tasks_client.get(f"/v1/tasks/{rows[1]['id']}", headers=requester.headers)).json()
    assert task["is_gold"] is True and task["gold_answer"] == {"label": "dog"}
    assert task["status"] == "open" and task["assignments"] == []
    assert task["project_id"] == project["id"] and task["input"] == {"image_url": "b.jpg"}


async def test_csv_upload_with_columns_as_input_fields(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    csv_body = (
        "text,lang,external_id,gold_answer,max_assignments\r\n"
        '"A cat, on a mat",en,r1,"{""label"": ""cat""}",\r\n'
        '"multi\nline",de,,,5\r\n'
    )
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=csv_body.encode(),
        headers={**requester.headers, "Content-Type": "text/csv; charset=utf-8"},
    )
    assert resp.status_code == 201, resp.text
    rows = await db.fetch(
        "SELECT input, external_id, gold_answer, max_assignments FROM tasks "
        "WHERE project_id = $1 ORDER BY id",
        project["id"],
    )
    assert orjson.loads(rows[0]["input"]) == {"text": "A cat, on a mat", "lang": "en"}
    assert rows[0]["external_id"] == "r1" and orjson.loads(rows[0]["gold_answer"]) == {
        "label": "cat"
    }
    assert orjson.loads(rows[1]["input"]) == {"text": "multi\nline", "lang": "de"}
    assert rows[1]["external_id"] is None and rows[1]["gold_answer"] is None
    assert [r["max_assignments"] for r in rows] == [3, 5]


async def test_csv_upload_with_a_json_input_column(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    csv_body = 'input,external_id\n"{""image_url"": ""x.jpg"", ""n"": 1}",e1\n'
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=csv_body.encode(),
        headers={**requester.headers, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 201, resp.text
    stored = await db.fetchval("SELECT input FROM tasks WHERE project_id = $1", project["id"])
    assert orjson.loads(stored) == {"image_url": "x.jpg", "n": 1}


async def test_ndjson_upload(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    lines = [
        orjson.dumps({"input": {"text": "one"}}),
        b"",
        orjson.dumps({"input": {"text": "two"}, "gold_answer": {"label": "bird"}}),
    ]
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=b"\n".join(lines) + b"\n",
        headers={**requester.headers, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["created"] == 2
    assert await _count(db, project["id"]) == 2


async def test_broken_json_rows_are_all_reported_and_nothing_is_created(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    body = {
        "tasks": [
            {"input": {"ok": 1}},
            {"input": "not an object"},
            {"input": {"ok": 2}, "gold_answer": {"label": "horse"}},
            {"gold_answer": {"label": "cat"}},
            {"input": {"ok": 3}, "max_assignments": 0},
            {"input": {"ok": 4}, "colour": "red"},
            {"input": {"ok": 5}, "external_id": ""},
            {"input": {"ok": 6}, "gold_answer": {"label": "cat", "extra": True}},
            {"input": {"ok": 7}},
        ]
    }
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks", json=body, headers=requester.headers
    )
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert sorted({e["loc"][1] for e in errors}) == [1, 2, 3, 4, 5, 6, 7]
    assert all(e["loc"][0] == "tasks" for e in errors)
    by_row = {e["loc"][1]: e["msg"] for e in errors}
    assert by_row[2].startswith("gold_answer.label")
    assert "max_assignments" in by_row[4] and "colour" in by_row[5]
    assert await _count(db, project["id"]) == 0


async def test_broken_csv_and_ndjson_rows_name_their_lines(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    csv_body = (
        "input,gold_answer\n"  # line 1
        '"{""a"": 1}",\n'  # line 2: fine
        "not json,\n"  # line 3: input is not JSON
        '"{""a"": 2}","{""label"": ""zebra""}"\n'  # line 4: gold not a label
        '"{""a"": 3}"\n'  # line 5: one cell short
        '"[1, 2]",\n'  # line 6: input not an object
    )
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=csv_body.encode(),
        headers={**requester.headers, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 422, resp.text
    assert sorted({tuple(e["loc"]) for e in resp.json()["errors"]}) == [
        ("line", 3),
        ("line", 4),
        ("line", 5),
        ("line", 6),
    ]
    ndjson = b'{"input": {"a": 1}}\n{"input": \n\n{"input": {"a": 2}, "max_assignments": "x"}\n'
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=ndjson,
        headers={**requester.headers, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 422, resp.text
    assert sorted({tuple(e["loc"]) for e in resp.json()["errors"]}) == [("line", 2), ("line", 4)]
    assert await _count(db, project["id"]) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"tasks": [', "application/json", 400, "malformed_json"),
        (b'{"tasks": []}', "application/json", 422, "validation_error"),
        (b'{"items": []}', "application/json", 422, "validation_error"),
        (b"<tasks/>", "application/xml", 415, "unsupported_media_type"),
        (b"input\n{}", "text/plain", 415, "unsupported_media_type"),
        (b"a,a\n1,2\n", "text/csv", 422, "validation_error"),
        (b"external_id\nx\n", "text/csv", 422, "validation_error"),
        (b"input,other\n{},1\n", "text/csv", 422, "validation_error"),
        (b"", "text/csv", 422, "validation_error"),
        ("text\n\xe9\n".encode("latin-1"), "text/csv", 422, "validation_error"),
    ],
)
async def test_unusable_bodies(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=content,
        headers={**requester.headers, "Content-Type": content_type},
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    assert await _count(db, project["id"]) == 0


async def test_more_than_10000_tasks_is_refused(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": [{"input": {"i": i}} for i in range(10_001)]},
        headers=requester.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["code"] == "too_many_tasks"
    assert await _count(db, project["id"]) == 0


async def test_free_form_gold_answers_follow_the_projects_schema(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    schema = {
        "type": "object",
        "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["rating"],
    }
    project = await create_project(
        tasks_client, requester, task_type="free_form", labels=None, answer_schema=schema
    )
    bad = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": [{"input": {"q": 1}, "gold_answer": {"rating": 9}}]},
        headers=requester.headers,
    )
    assert bad.status_code == 422 and "rating" in bad.json()["errors"][0]["msg"]
    await add_tasks(
        tasks_client, requester, project["id"], [{"input": {"q": 1}, "gold_answer": {"rating": 4}}]
    )
    assert await _count(db, project["id"]) == 1


async def test_idempotent_upload_replays_without_creating_twice(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    url = f"/v1/projects/{project['id']}/tasks"
    headers = {**requester.headers, "Idempotency-Key": "upload-1"}
    body = {"tasks": image_tasks(5)}
    first, second = await asyncio.gather(
        tasks_client.post(url, json=body, headers=headers),
        tasks_client.post(url, json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert await _count(db, project["id"]) == 5
    other = await tasks_client.post(url, json={"tasks": image_tasks(1)}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    csv_headers = {**headers, "Idempotency-Key": "upload-csv", "Content-Type": "text/csv"}
    a = await tasks_client.post(url, content=b"text\nx\ny\n", headers=csv_headers)
    b = await tasks_client.post(url, content=b"text\nx\ny\n", headers=csv_headers)
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    assert b.headers["Idempotent-Replayed"] == "true"
    assert await _count(db, project["id"]) == 7


async def test_upload_to_a_published_project_reserves_its_slots(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="1.00", lifetime_seconds=3600)
    await deposit(payments_client, requester, "10.00")
    await publish(tasks_client, requester, project["id"])  # no tasks yet: nothing reserved
    assert (await balance(payments_client, requester))["reserved"] == "0.00"
    # 2 tasks x (3 + 1 custom) ... 3 + 1 slots x 1.20 = 4.80
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [{"input": {"a": 1}}, {"input": {"a": 2}, "max_assignments": 1}],
    )
    money = await balance(payments_client, requester)
    assert money == {**money, "available": "5.20", "reserved": "4.80"}
    expiry = await db.fetch(
        "SELECT expires_at - created_at AS lifetime FROM tasks WHERE project_id = $1",
        project["id"],
    )
    assert all(abs(r["lifetime"].total_seconds() - 3600) < 5 for r in expiry)
    # 5 more slots (6.00) exceed the 5.20 left: 402 and nothing created
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": [{"input": {"a": 3}, "max_assignments": 5}]},
        headers=requester.headers,
    )
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    assert await _count(db, project["id"]) == 2
    assert (await balance(payments_client, requester))["reserved"] == "4.80"
    view = (
        await tasks_client.get(f"/v1/projects/{project['id']}", headers=requester.headers)
    ).json()
    assert view["counts"]["open_slots"] == 4 and view["money"]["reserved"] == "4.80"


async def test_tasks_before_publish_inherit_its_lifetime_and_later_ones_carry_their_own(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="0.10", lifetime_seconds=3600)
    base = f"/v1/projects/{project['id']}"
    early = (await add_tasks(tasks_client, requester, project["id"], image_tasks(2)))["task_ids"]
    await deposit(payments_client, requester, "10.00")
    published = await publish(tasks_client, requester, project["id"])
    live = (await add_tasks(tasks_client, requester, project["id"], image_tasks(1)))["task_ids"]
    resp = await tasks_client.post(f"{base}/pause", headers=requester.headers)
    assert resp.status_code == 200
    paused = (await add_tasks(tasks_client, requester, project["id"], image_tasks(1)))["task_ids"]

    rows = {
        r["id"]: r
        for r in await db.fetch(
            "SELECT id, open_slots, expires_at, expires_at - created_at AS lifetime FROM tasks"
            " WHERE project_id = $1",
            project["id"],
        )
    }
    assert [(rows[i]["open_slots"], rows[i]["expires_at"]) for i in early] == [(3, None)] * 2
    for task_id in live + paused:  # added to a live project: lifetime_seconds from their upload
        assert rows[task_id]["open_slots"] == 3
        assert abs(rows[task_id]["lifetime"].total_seconds() - 3600) < 5

    listed = (await tasks_client.get(f"{base}/tasks", headers=requester.headers)).json()["items"]
    shown = {t["id"]: datetime.fromisoformat(t["expires_at"]) for t in listed}
    publish_end = datetime.fromisoformat(published["published_at"]) + timedelta(seconds=3600)
    assert [shown[i] for i in early] == [publish_end] * 2
    assert all(shown[i] == rows[i]["expires_at"] for i in live + paused)
    one = (await tasks_client.get(f"/v1/tasks/{early[0]}", headers=requester.headers)).json()
    assert datetime.fromisoformat(one["expires_at"]) == publish_end


async def test_closed_projects_take_no_tasks(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    closed = await tasks_client.post(
        f"/v1/projects/{project['id']}/close", headers=requester.headers
    )
    assert closed.status_code == 200, closed.text
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": image_tasks(1)},
        headers=requester.headers,
    )
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    assert await _count(db, project["id"]) == 0


async def test_task_list_paginates_newest_first_with_assignments(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    created = (await add_tasks(tasks_client, requester, project["id"], image_tasks(5)))["task_ids"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await tasks_client.get(
                f"/v1/projects/{project['id']}/tasks", params=params, headers=requester.headers
            )
        ).json()
        assert all(t["assignments"] == [] and t["is_gold"] is False for t in page["items"])
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    filtered = await tasks_client.get(
        f"/v1/projects/{project['id']}/tasks",
        params={"status": "completed"},
        headers=requester.headers,
    )
    assert filtered.status_code == 200 and filtered.json()["items"] == []


COPY_COLUMNS = [
    "id",
    "project_id",
    "requester_id",
    "external_id",
    "input",
    "gold_answer",
    "max_assignments",
    "open_slots",
    "status",
    "expires_at",
]


async def test_bulk_upload_of_10000_tasks_in_one_call(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    """The contract's maximum in one call: every row lands, ids are unique and in upload order.
    Its speed against a raw COPY is a benchmark figure (bench/, figure 4), not a timed test."""
    requester = await create_requester(workers_client)
    tasks = [
        {"input": {"text": f"sentence number {i} " * 4, "n": i}, "external_id": f"e{i}"}
        for i in range(10_000)
    ]
    project = await create_project(tasks_client, requester)
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        content=orjson.dumps({"tasks": tasks}),
        headers={**requester.headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    ids = resp.json()["task_ids"]
    assert resp.json()["created"] == 10_000 and len(set(ids)) == 10_000
    assert ids == sorted(ids)
    assert await _count(db, project["id"]) == 10_000
    rows = await db.fetch(
        "SELECT external_id, (input->>'n')::int AS n FROM tasks WHERE project_id = $1 ORDER BY id",
        project["id"],
    )
    assert [(r["external_id"], r["n"]) for r in rows] == [(f"e{i}", i) for i in range(10_000)]
