"""Worker messages: a requester writes to workers it has worked with; each worker reads its own."""

from __future__ import annotations

import httpx
import pytest

from shared.ids import new_id
from tests.fixtures.accounts import Actor, create_requester
from tests.fixtures.tasks import (
    approve,
    cat_tasks,
    published_project,
    reject,
    submitted,
    workers,
)


async def send(
    client: httpx.AsyncClient, requester: Actor, worker_ids: list[str], **fields: str
) -> httpx.Response:
    body = {"worker_ids": worker_ids, "subject": "Thanks", "body": "Great labels!", **fields}
    return await client.post("/v1/workers/messages", json=body, headers=requester.headers)


async def inbox(client: httpx.AsyncClient, worker: Actor, **params: str) -> dict:
    resp = await client.get("/v1/workers/me/messages", params=params, headers=worker.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
async def crew(tasks_client, workers_client, payments_client):
    """A requester, a worker it approved, one it rejected, one whose answer it has not
    decided, and one who never worked for it."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    approved, rejected, pending, stranger = await workers(workers_client, 4)
    first = await submitted(tasks_client, approved, project.id)
    assert (await approve(tasks_client, project.requester, first["id"])).status_code == 200
    second = await submitted(tasks_client, rejected, project.id)
    assert (await reject(tasks_client, project.requester, second["id"])).status_code == 200
    await submitted(tasks_client, pending, project.id)
    return project.requester, approved, rejected, pending, stranger


async def test_only_workers_it_has_worked_with_get_the_message(
    workers_client: httpx.AsyncClient, crew
) -> None:
    requester, approved, rejected, pending, stranger = crew
    other_requester = await create_requester(workers_client)
    ids = [
        approved.id,
        pending.id,
        "NOSUCHWORKER",
        rejected.id,
        approved.id,  # a duplicate counts once
        stranger.id,
        other_requester.id,  # not a worker
    ]
    resp = await send(workers_client, requester, ids, subject="Bonus round", body="New HITs up")
    assert resp.status_code == 201, resp.text
    result = resp.json()
    assert result["sent"] == [approved.id, rejected.id]
    assert [(f["worker_id"], f["reason"]) for f in result["failures"]] == [
        (pending.id, "no_work_for_requester"),
        ("NOSUCHWORKER", "unknown_worker"),
        (stranger.id, "no_work_for_requester"),
        (other_requester.id, "unknown_worker"),
    ]
    for worker in (approved, rejected):
        items = (await inbox(workers_client, worker))["items"]
        assert [(m["subject"], m["body"], m["requester_id"]) for m in items] == [
            ("Bonus round", "New HITs up", requester.id)
        ]
        assert items[0]["read_at"] is None and items[0]["requester_name"]
    for worker in (pending, stranger):
        assert (await inbox(workers_client, worker))["items"] == []

    # Another requester has worked with none of them.
    resp = await send(workers_client, other_requester, [approved.id])
    assert resp.status_code == 201
    assert resp.json()["sent"] == [] and resp.json()["failures"][0]["worker_id"] == approved.id


async def test_the_inbox_pages_filters_and_marks_read(
    workers_client: httpx.AsyncClient, crew, db
) -> None:
    requester, approved, rejected, _, _ = crew
    for n in range(3):
        resp = await send(workers_client, requester, [approved.id], subject=f"Note {n}")
        assert resp.status_code == 201
    first = await inbox(workers_client, approved, limit="2")
    assert [m["subject"] for m in first["items"]] == ["Note 2", "Note 1"]
    rest = await inbox(workers_client, approved, limit="2", cursor=first["next_cursor"])
    assert [m["subject"] for m in rest["items"]] == ["Note 0"] and rest["next_cursor"] is None

    message_id = first["items"][0]["id"]
    resp = await workers_client.post(
        f"/v1/workers/me/messages/{message_id}/read", headers=approved.headers
    )
    assert resp.status_code == 200 and resp.json()["read_at"] is not None
    again = await workers_client.post(
        f"/v1/workers/me/messages/{message_id}/read", headers=approved.headers
    )
    assert again.json()["read_at"] == resp.json()["read_at"]  # the first time stays
    unread = await inbox(workers_client, approved, unread="true")
    assert [m["subject"] for m in unread["items"]] == ["Note 1", "Note 0"]

    # Someone else's message is a 404, and marking it changes nothing.
    resp = await workers_client.post(
        f"/v1/workers/me/messages/{message_id}/read", headers=rejected.headers
    )
    assert (resp.status_code, resp.json()["code"]) == (404, "not_found")
    resp = await workers_client.post(
        f"/v1/workers/me/messages/{new_id()}/read", headers=approved.headers
    )
    assert resp.status_code == 404
    bad = await workers_client.get(
        "/v1/workers/me/messages", params={"cursor": "forged"}, headers=approved.headers
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")


async def test_an_idempotency_key_sends_once(workers_client: httpx.AsyncClient, crew, db) -> None:
    requester, approved, _, _, _ = crew
    headers = {**requester.headers, "Idempotency-Key": "note-1"}
    body = {"worker_ids": [approved.id], "subject": "Once", "body": "Only once"}
    first = await workers_client.post("/v1/workers/messages", json=body, headers=headers)
    second = await workers_client.post("/v1/workers/messages", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    count = await db.fetchval(
        "SELECT count(*) FROM worker_messages WHERE worker_id = $1 AND subject = 'Once'",
        approved.id,
    )
    assert count == 1


async def test_bad_input_and_wrong_roles(workers_client: httpx.AsyncClient, crew, db) -> None:
    requester, approved, _, _, _ = crew
    bad_bodies = [
        {"worker_ids": [], "subject": "s", "body": "b"},
        {"worker_ids": [approved.id] * 101, "subject": "s", "body": "b"},
        {"worker_ids": [approved.id], "subject": "s" * 201, "body": "b"},
        {"worker_ids": [approved.id], "subject": "s", "body": "b" * 4097},
        {"worker_ids": [approved.id], "subject": "  ", "body": "b"},
        {"worker_ids": [approved.id], "subject": "s", "body": ""},
        {"worker_ids": ["not an id!"], "subject": "s", "body": "b"},
        {"worker_ids": [approved.id], "subject": "s"},
        {"worker_ids": [approved.id], "subject": "s", "body": "b", "cc": []},
    ]
    for body in bad_bodies:
        resp = await workers_client.post(
            "/v1/workers/messages", json=body, headers=requester.headers
        )
        assert (resp.status_code, resp.json()["code"]) == (422, "validation_error"), body
    # The limits themselves are fine.
    resp = await workers_client.post(
        "/v1/workers/messages",
        json={"worker_ids": [approved.id] * 100, "subject": "s" * 200, "body": "b" * 4096},
        headers=requester.headers,
    )
    assert resp.status_code == 201 and resp.json()["sent"] == [approved.id]
    assert (
        await db.fetchval("SELECT count(*) FROM worker_messages WHERE worker_id = $1", approved.id)
        == 1
    )

    resp = await send(workers_client, approved, [approved.id])  # a worker cannot send
    assert resp.status_code == 403
    resp = await workers_client.get("/v1/workers/me/messages", headers=requester.headers)
    assert resp.status_code == 403
    resp = await workers_client.get("/v1/workers/me/messages")
    assert resp.status_code == 401
