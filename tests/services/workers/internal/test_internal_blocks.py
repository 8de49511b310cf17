"""`/internal/requesters/{id}/blocks`: the native block rules for a requester named by another
service (the MTurk door's CreateWorkerBlock, DeleteWorkerBlock, ListWorkerBlocks)."""

from __future__ import annotations

import httpx

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester, create_worker

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}


async def test_internal_blocks_are_the_requesters_own(workers_client: httpx.AsyncClient) -> None:
    requester = await create_requester(workers_client)
    other = await create_requester(workers_client)
    workers = [await create_worker(workers_client) for _ in range(3)]
    path = f"/internal/requesters/{requester.id}/blocks"
    for w in workers:
        resp = await workers_client.post(
            path, json={"worker_id": w.id, "reason": f"r {w.id}"}, headers=INTERNAL
        )
        assert resp.status_code == 201, resp.text
    again = await workers_client.post(
        path, json={"worker_id": workers[0].id, "reason": "changed"}, headers=INTERNAL
    )
    assert again.status_code == 201 and again.json()["reason"] == f"r {workers[0].id}"

    first = await workers_client.get(path, params={"limit": 2}, headers=INTERNAL)
    assert first.status_code == 200
    rest = await workers_client.get(
        path, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=INTERNAL
    )
    seen = [b["worker_id"] for b in first.json()["items"] + rest.json()["items"]]
    assert sorted(seen) == sorted(w.id for w in workers) and rest.json()["next_cursor"] is None
    # The public list of the requester shows the same blocks.
    public = await workers_client.get("/v1/blocks", headers=requester.headers)
    assert {b["worker_id"] for b in public.json()["items"]} == set(seen)
    assert (
        await workers_client.get(f"/internal/requesters/{other.id}/blocks", headers=INTERNAL)
    ).json()["items"] == []

    gone = await workers_client.delete(f"{path}/{workers[0].id}", headers=INTERNAL)
    assert gone.status_code == 204
    missing = await workers_client.delete(f"{path}/{workers[0].id}", headers=INTERNAL)
    assert missing.status_code == 404 and missing.json()["code"] == "block_not_found"
    unknown = await workers_client.post(
        path, json={"worker_id": "0NOSUCHWORKER", "reason": "x"}, headers=INTERNAL
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "worker_not_found"
    blank = await workers_client.post(
        path, json={"worker_id": workers[1].id, "reason": "  "}, headers=INTERNAL
    )
    assert blank.status_code == 422
    assert (await workers_client.get(path)).status_code == 401
    assert (await workers_client.get(path, headers=requester.headers)).status_code == 401
