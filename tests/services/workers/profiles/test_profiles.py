"""Worker profiles: own profile, edits with ISO validation, public profile with live stats."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import (
    insert_assignments,
    set_assignment_status,
    true_counts,
)


async def test_profile_defaults_from_the_account(workers_client: httpx.AsyncClient, db) -> None:
    worker = await create_worker(workers_client, name="Ana", country="pt", languages=["pt", "EN"])
    resp = await workers_client.get("/v1/workers/me", headers=worker.headers)
    assert resp.status_code == 200
    me = resp.json()
    assert me["worker_id"] == worker.id
    assert me["display_name"] == "Ana"
    assert me["country"] == "PT" and me["languages"] == ["pt", "en"]
    assert me["skills"] == [] and me["bio"] == ""
    assert me["submitted_count"] == me["approved_count"] == me["rejected_count"] == 0
    assert me["approval_rate"] is None
    # the row exists from sign-up on
    assert await db.fetchval("SELECT count(*) FROM worker_profiles WHERE worker_id = $1", worker.id)


async def test_profile_falls_back_to_the_account_without_a_row(
    workers_client: httpx.AsyncClient, db
) -> None:
    """Accounts written by other means (or before the migration) still have a profile."""
    worker = await create_worker(workers_client, name="Old Timer", country="NO")
    await db.execute("DELETE FROM worker_profiles WHERE worker_id = $1", worker.id)
    me = (await workers_client.get("/v1/workers/me", headers=worker.headers)).json()
    assert me["display_name"] == "Old Timer" and me["country"] == "NO"
    patched = await workers_client.patch(
        "/v1/workers/me", json={"bio": "back"}, headers=worker.headers
    )
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "Old Timer" and patched.json()["bio"] == "back"


async def test_patch_changes_only_the_fields_sent(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client, country="DE")
    resp = await workers_client.patch(
        "/v1/workers/me",
        json={
            "display_name": "  Night Owl ",
            "languages": ["DE", "en", "de"],
            "skills": ["Transcription", " image tagging ", "transcription"],
            "bio": "I label birds.",
        },
        headers=worker.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["display_name"] == "Night Owl"
    assert body["languages"] == ["de", "en"]
    assert body["skills"] == ["Transcription", "image tagging"]
    assert body["country"] == "DE"  # not sent, not changed
    cleared = await workers_client.patch(
        "/v1/workers/me", json={"country": None}, headers=worker.headers
    )
    assert cleared.json()["country"] is None
    assert cleared.json()["bio"] == "I label birds."
    again = (await workers_client.get("/v1/workers/me", headers=worker.headers)).json()
    assert again == cleared.json()


@pytest.mark.parametrize(
    "body",
    [
        {"country": "XX"},
        {"country": "DEU"},
        {"languages": ["zz"]},
        {"languages": ["eng"]},
        {"display_name": ""},
        {"display_name": None},
        {"skills": None},
        {"skills": ["x" * 51]},
        {"bio": "b" * 5001},
        {"email": "new@example.com"},
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    workers_client: httpx.AsyncClient, db, body: dict
) -> None:
    worker = await create_worker(workers_client, country="FR")
    before = dict(
        await db.fetchrow("SELECT * FROM worker_profiles WHERE worker_id = $1", worker.id)
    )
    resp = await workers_client.patch("/v1/workers/me", json=body, headers=worker.headers)
    assert resp.status_code == 422
    assert resp.json()["code"] == "validation_error"
    after = dict(await db.fetchrow("SELECT * FROM worker_profiles WHERE worker_id = $1", worker.id))
    assert after == before


async def test_roles_on_profile_endpoints(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client)
    requester = await create_requester(workers_client)
    assert (
        await workers_client.get("/v1/workers/me", headers=requester.headers)
    ).status_code == 403
    patch = await workers_client.patch("/v1/workers/me", json={}, headers=requester.headers)
    assert patch.status_code == 403 and patch.json()["code"] == "wrong_role"
    public = await workers_client.get(f"/v1/workers/{worker.id}", headers=worker.headers)
    assert public.status_code == 403
    assert (await workers_client.get("/v1/workers/me")).status_code == 401


async def test_public_profile_is_404_for_unknown_ids_and_requesters(
    workers_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    other_requester = await create_requester(workers_client)
    for worker_id in ("NOPE", other_requester.id, requester.id):
        resp = await workers_client.get(f"/v1/workers/{worker_id}", headers=requester.headers)
        assert resp.status_code == 404
        assert resp.json()["code"] == "worker_not_found"


async def test_public_profile_hides_the_email_and_shows_live_stats(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client, name="Stat Worker")
    ids = await insert_assignments(
        db,
        requester_id=requester.id,
        worker_id=worker.id,
        statuses=[
            "approved",
            "approved",
            "approved",
            "rejected",
            "submitted",
            "accepted",
            "returned",
            "expired",
        ],
    )

    async def public() -> dict:
        resp = await workers_client.get(f"/v1/workers/{worker.id}", headers=requester.headers)
        assert resp.status_code == 200
        return resp.json()

    body = await public()
    assert "email" not in body and body["display_name"] == "Stat Worker"
    assert (body["submitted_count"], body["approved_count"], body["rejected_count"]) == (5, 3, 1)
    assert body["pending_review_count"] == 1
    assert body["approval_rate"] == 75.0
    assert {k: body[k] for k in ("submitted_count", "approved_count", "rejected_count")} == (
        await true_counts(db, worker.id)
    )

    # every transition is visible at once: submit, approve, reject, override a rejection
    await set_assignment_status(db, ids[5], "submitted")
    await set_assignment_status(db, ids[4], "approved")
    await set_assignment_status(db, ids[3], "approved")
    body = await public()
    assert (body["submitted_count"], body["approved_count"], body["rejected_count"]) == (6, 5, 0)
    assert body["approval_rate"] == 100.0 and body["pending_review_count"] == 1
    await set_assignment_status(db, ids[5], "rejected")
    body = await public()
    assert body["approval_rate"] == round(100 * 5 / 6, 2)
    assert {k: body[k] for k in ("submitted_count", "approved_count", "rejected_count")} == (
        await true_counts(db, worker.id)
    )
