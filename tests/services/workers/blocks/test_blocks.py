"""Blocks per requester: create with a reason (idempotent), list, delete."""

from __future__ import annotations

import httpx
import pytest

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker


async def _block(client: httpx.AsyncClient, requester, worker_id: str, reason: str = "spam"):
    return await client.post(
        "/v1/blocks", json={"worker_id": worker_id, "reason": reason}, headers=requester.headers
    )


async def test_block_list_and_unblock(workers_client: httpx.AsyncClient, db) -> None:
    requester = await create_requester(workers_client)
    other = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    created = await _block(workers_client, requester, worker.id, "random answers")
    assert created.status_code == 201, created.text
    assert created.json()["worker_id"] == worker.id
    assert created.json()["reason"] == "random answers"

    twice = await _block(workers_client, requester, worker.id, "another reason")
    assert twice.status_code == 201 and twice.json() == created.json()
    assert (
        await db.fetchval("SELECT count(*) FROM worker_blocks WHERE worker_id = $1", worker.id) == 1
    )

    mine = await workers_client.get("/v1/blocks", headers=requester.headers)
    assert [b["worker_id"] for b in mine.json()["items"]] == [worker.id]
    theirs = await workers_client.get("/v1/blocks", headers=other.headers)
    assert theirs.json()["items"] == []
    foreign_delete = await workers_client.delete(f"/v1/blocks/{worker.id}", headers=other.headers)
    assert foreign_delete.status_code == 404 and foreign_delete.json()["code"] == "block_not_found"

    removed = await workers_client.delete(f"/v1/blocks/{worker.id}", headers=requester.headers)
    assert removed.status_code == 204
    again = await workers_client.delete(f"/v1/blocks/{worker.id}", headers=requester.headers)
    assert again.status_code == 404
    assert (await workers_client.get("/v1/blocks", headers=requester.headers)).json()["items"] == []


async def test_blocking_a_non_worker_is_404_and_creates_nothing(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    other_requester = await create_requester(workers_client)
    for worker_id in ("NOPE", other_requester.id):
        resp = await _block(workers_client, requester, worker_id)
        assert resp.status_code == 404 and resp.json()["code"] == "worker_not_found"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM worker_blocks WHERE requester_id = $1", requester.id
        )
        == 0
    )


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": "X"},
        {"worker_id": "X", "reason": "  "},
        {"reason": "r"},
        {"worker_id": "X", "reason": "r", "until": 1},
    ],
)
async def test_invalid_blocks_are_422(workers_client: httpx.AsyncClient, body: dict) -> None:
    requester = await create_requester(workers_client)
    resp = await workers_client.post("/v1/blocks", json=body, headers=requester.headers)
    assert resp.status_code == 422


async def test_blocks_are_for_requesters(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client)
    other = await create_worker(workers_client)
    assert (await _block(workers_client, worker, other.id)).status_code == 403
    assert (await workers_client.get("/v1/blocks", headers=worker.headers)).status_code == 403
    assert (
        await workers_client.delete(f"/v1/blocks/{other.id}", headers=worker.headers)
    ).status_code == 403


async def test_blocks_paginate_newest_first(workers_client: httpx.AsyncClient) -> None:
    requester = await create_requester(workers_client)
    workers = [await create_worker(workers_client) for _ in range(5)]
    for worker in workers:
        assert (await _block(workers_client, requester, worker.id)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await workers_client.get("/v1/blocks", params=params, headers=requester.headers)
        ).json()
        seen += [b["worker_id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [w.id for w in reversed(workers)]


async def test_block_replays_with_the_same_idempotency_key(
    workers_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    headers = {**requester.headers, "Idempotency-Key": new_id()}
    body = {"worker_id": worker.id, "reason": "copy-paste answers"}
    first = await workers_client.post("/v1/blocks", json=body, headers=headers)
    second = await workers_client.post("/v1/blocks", json=body, headers=headers)
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
