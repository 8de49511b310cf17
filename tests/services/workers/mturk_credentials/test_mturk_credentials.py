"""MTurk credentials (contract: "MTurk credentials"): issued to requesters, secret shown once and
sealed at rest, listed without secrets, revoked with an immediate effect on the door."""

from __future__ import annotations

import httpx

from shared.mturk_credentials import open_secret, secrets_key
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester, create_worker

PATH = "/v1/accounts/me/mturk-credentials"


async def test_created_once_sealed_at_rest_listed_without_secret(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    resp = await workers_client.post(PATH, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert set(created) == {"access_key_id", "secret_access_key", "created_at", "last_used_at"}
    access_key_id, secret = created["access_key_id"], created["secret_access_key"]
    assert len(access_key_id) == 20 and access_key_id.isalnum() and access_key_id.isupper()
    assert len(secret) == 40

    row = await db.fetchrow(
        "SELECT account_id, secret_ciphertext FROM mturk_credentials WHERE access_key_id = $1",
        access_key_id,
    )
    assert row["account_id"] == requester.id
    sealed = bytes(row["secret_ciphertext"])
    assert secret.encode() not in sealed
    # The key is derived from the internal token when MTURK_SECRETS_KEY is unset.
    assert open_secret(secrets_key(None, INTERNAL_TOKEN), access_key_id, sealed) == secret

    listing = await workers_client.get(PATH, headers=requester.headers)
    assert listing.status_code == 200
    assert listing.json()["items"] == [
        {k: v for k, v in created.items() if k != "secret_access_key"}
    ]


async def test_revoke_then_404_and_others_credentials_are_404(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    stranger = await create_requester(workers_client)
    access_key_id = (await workers_client.post(PATH, headers=owner.headers)).json()["access_key_id"]
    assert (
        await workers_client.delete(f"{PATH}/{access_key_id}", headers=stranger.headers)
    ).status_code == 404
    resp = await workers_client.delete(f"{PATH}/{access_key_id}", headers=owner.headers)
    assert resp.status_code == 204
    assert await db.fetchval(
        "SELECT revoked_at IS NOT NULL FROM mturk_credentials WHERE access_key_id = $1",
        access_key_id,
    )
    again = await workers_client.delete(f"{PATH}/{access_key_id}", headers=owner.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"
    assert (await workers_client.get(PATH, headers=owner.headers)).json()["items"] == []


async def test_workers_and_anonymous_callers_are_refused(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client)
    resp = await workers_client.post(PATH, headers=worker.headers)
    assert resp.status_code == 403
    assert resp.json()["code"] == "wrong_role"
    assert (await workers_client.get(PATH, headers=worker.headers)).status_code == 403
    assert (await workers_client.post(PATH)).status_code == 401


async def test_active_credentials_are_capped(workers_client: httpx.AsyncClient, apps) -> None:
    requester = await create_requester(workers_client)
    cap = apps["workers"].state.settings.max_active_api_keys
    for _ in range(cap):
        assert (await workers_client.post(PATH, headers=requester.headers)).status_code == 201
    resp = await workers_client.post(PATH, headers=requester.headers)
    assert resp.status_code == 409
    assert resp.json()["code"] == "too_many_mturk_credentials"
