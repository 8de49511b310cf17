"""Direct grants by the owner, a worker's own qualifications, and the system types."""

from __future__ import annotations

import httpx
import pytest

from shared.eligibility import (
    APPROVAL_RATE_TYPE_ID,
    APPROVED_COUNT_TYPE_ID,
    COUNTRY_TYPE_ID,
    SYSTEM_TYPE_IDS,
)
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import (
    create_type,
    grant,
    insert_assignments,
    my_qualifications,
    set_assignment_status,
)


async def test_grant_change_revoke_and_grant_again(workers_client: httpx.AsyncClient, db) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    url = f"/v1/qualification-types/{qtype['id']}/workers/{worker.id}"

    first = await grant(workers_client, owner, qtype["id"], worker.id, 40)
    assert first.status_code == 201, first.text
    assert first.json()["value"] == 40 and first.json()["status"] == "granted"
    changed = await grant(workers_client, owner, qtype["id"], worker.id, 55)
    assert changed.status_code == 200 and changed.json()["value"] == 55
    assert changed.json()["granted_at"] == first.json()["granted_at"]
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == 55

    listing = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/workers", headers=owner.headers
    )
    assert [(g["worker_id"], g["value"]) for g in listing.json()["items"]] == [(worker.id, 55)]

    revoked = await workers_client.request(
        "DELETE", url, json={"reason": "quality dropped"}, headers=owner.headers
    )
    assert revoked.status_code == 204
    assert qtype["id"] not in await my_qualifications(workers_client, worker)
    gone = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/workers", headers=owner.headers
    )
    assert gone.json()["items"] == []
    history = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/workers",
        params={"status": "revoked"},
        headers=owner.headers,
    )
    [row] = history.json()["items"]
    assert row["revoke_reason"] == "quality dropped" and row["revoked_at"] is not None

    again = await workers_client.delete(url, headers=owner.headers)  # no body: reason optional
    assert again.status_code == 404 and again.json()["code"] == "qualification_not_granted"

    regrant = await grant(workers_client, owner, qtype["id"], worker.id, 9)
    assert regrant.status_code == 201 and regrant.json()["revoke_reason"] is None
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == 9
    assert (
        await db.fetchval(
            "SELECT count(*) FROM worker_qualifications WHERE worker_id = $1", worker.id
        )
        == 1
    )


async def test_grants_of_a_foreign_requesters_type_are_404(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    stranger = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    await grant(workers_client, owner, qtype["id"], worker.id, 7)
    before = [
        dict(r)
        for r in await db.fetch(
            "SELECT * FROM worker_qualifications WHERE worker_id = $1", worker.id
        )
    ]
    url = f"/v1/qualification-types/{qtype['id']}/workers/{worker.id}"
    put = await workers_client.put(url, json={"value": 99}, headers=stranger.headers)
    delete = await workers_client.request(
        "DELETE", url, json={"reason": "x"}, headers=stranger.headers
    )
    listing = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/workers", headers=stranger.headers
    )
    for resp in (put, delete, listing):
        assert resp.status_code == 404 and resp.json()["code"] == "qualification_type_not_found"
    as_worker = await workers_client.put(url, json={"value": 99}, headers=worker.headers)
    assert as_worker.status_code == 403
    after = [
        dict(r)
        for r in await db.fetch(
            "SELECT * FROM worker_qualifications WHERE worker_id = $1", worker.id
        )
    ]
    assert after == before


async def test_granting_to_someone_who_is_not_a_worker_is_404(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    qtype = await create_type(workers_client, owner)
    for worker_id in ("NOPE", owner.id):
        resp = await grant(workers_client, owner, qtype["id"], worker_id, 1)
        assert resp.status_code == 404 and resp.json()["code"] == "worker_not_found"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM worker_qualifications WHERE qualification_type_id = $1",
            qtype["id"],
        )
        == 0
    )


@pytest.mark.parametrize("body", [{"value": "high"}, {"value": 1.5}, {"value": 2**31}, {"v": 1}])
async def test_invalid_grant_values_are_422(workers_client: httpx.AsyncClient, body: dict) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    resp = await workers_client.put(
        f"/v1/qualification-types/{qtype['id']}/workers/{worker.id}",
        json=body,
        headers=owner.headers,
    )
    assert resp.status_code == 422
    assert qtype["id"] not in await my_qualifications(workers_client, worker)


@pytest.mark.parametrize("type_id", sorted(SYSTEM_TYPE_IDS))
async def test_system_types_cannot_be_granted_or_revoked_by_hand(
    workers_client: httpx.AsyncClient, db, type_id: str
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    url = f"/v1/qualification-types/{type_id}/workers/{worker.id}"
    put = await workers_client.put(url, json={"value": 100}, headers=owner.headers)
    delete = await workers_client.request(
        "DELETE", url, json={"reason": "x"}, headers=owner.headers
    )
    listing = await workers_client.get(
        f"/v1/qualification-types/{type_id}/workers", headers=owner.headers
    )
    for resp in (put, delete, listing):
        assert resp.status_code == 403 and resp.json()["code"] == "system_qualification_type"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM worker_qualifications WHERE qualification_type_id = $1", type_id
        )
        == 0
    )


async def test_system_qualifications_follow_real_data(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client, country="ke")

    quals = await my_qualifications(workers_client, worker)
    assert quals[APPROVAL_RATE_TYPE_ID]["value"] == 100
    assert quals[APPROVED_COUNT_TYPE_ID]["value"] == 0
    assert quals[COUNTRY_TYPE_ID]["value"] == "KE"
    assert all(quals[t]["is_system"] and quals[t]["granted_at"] is None for t in SYSTEM_TYPE_IDS)
    assert quals[COUNTRY_TYPE_ID]["name"] == "system.country"

    # 9 decided, all rejected: still below the 10-decision threshold, so 100
    ids = await insert_assignments(
        db,
        requester_id=requester.id,
        worker_id=worker.id,
        statuses=["rejected"] * 9 + ["submitted"],
    )
    quals = await my_qualifications(workers_client, worker)
    assert quals[APPROVAL_RATE_TYPE_ID]["value"] == 100
    # the 10th decision counts: 1 approved of 10
    await set_assignment_status(db, ids[-1], "approved")
    quals = await my_qualifications(workers_client, worker)
    assert quals[APPROVAL_RATE_TYPE_ID]["value"] == 10
    assert quals[APPROVED_COUNT_TYPE_ID]["value"] == 1
    # 2 of 11 approved is 18.18...%: rounded down
    await insert_assignments(
        db, requester_id=requester.id, worker_id=worker.id, statuses=["approved"]
    )
    quals = await my_qualifications(workers_client, worker)
    assert quals[APPROVAL_RATE_TYPE_ID]["value"] == 200 // 11
    assert quals[APPROVED_COUNT_TYPE_ID]["value"] == 2

    # country comes from the profile; clearing it removes the qualification
    await workers_client.patch("/v1/workers/me", json={"country": "ug"}, headers=worker.headers)
    assert (await my_qualifications(workers_client, worker))[COUNTRY_TYPE_ID]["value"] == "UG"
    await workers_client.patch("/v1/workers/me", json={"country": None}, headers=worker.headers)
    assert COUNTRY_TYPE_ID not in await my_qualifications(workers_client, worker)


async def test_my_qualifications_paginate_across_granted_and_system(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client, country="SE")
    granted = []
    for value in range(4):
        qtype = await create_type(workers_client, owner)
        await grant(workers_client, owner, qtype["id"], worker.id, value)
        granted.append(qtype["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await workers_client.get(
            "/v1/workers/me/qualifications", params=params, headers=worker.headers
        )
        assert resp.status_code == 200
        page = resp.json()
        assert len(page["items"]) <= 2
        seen += [q["qualification_type_id"] for q in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([*granted, *SYSTEM_TYPE_IDS], reverse=True)


async def test_my_qualifications_is_for_workers(workers_client: httpx.AsyncClient) -> None:
    requester = await create_requester(workers_client)
    resp = await workers_client.get("/v1/workers/me/qualifications", headers=requester.headers)
    assert resp.status_code == 403
