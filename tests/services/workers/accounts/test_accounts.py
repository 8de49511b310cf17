"""The contract's "Accounts" table: sign-up, keys shown once, revocation, 401/409."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.accounts import create_requester, create_worker, unique_email


async def test_sign_up_returns_account_and_a_working_key(workers_client: httpx.AsyncClient) -> None:
    email = unique_email("alice")
    resp = await workers_client.post(
        "/v1/accounts",
        json={
            "kind": "worker",
            "name": "Alice",
            "email": email,
            "country": "de",
            "languages": ["EN", "de"],
        },
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["api_key"].startswith("mk_") and len(body["api_key"]) >= 40
    acct = body["account"]
    assert acct["kind"] == "worker" and acct["email"] == email
    assert acct["country"] == "DE" and acct["languages"] == ["en", "de"]
    me = await workers_client.get(
        "/v1/accounts/me", headers={"Authorization": f"Bearer {body['api_key']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == acct["id"]


async def test_duplicate_email_per_kind_is_409_but_other_kind_is_fine(
    workers_client: httpx.AsyncClient, db
) -> None:
    email = unique_email("dup")
    first = await create_worker(workers_client, email=email)
    resp = await workers_client.post(
        "/v1/accounts", json={"kind": "worker", "name": "Again", "email": email.upper()}
    )
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "email_taken"
    assert (
        await db.fetchval("SELECT count(*) FROM accounts WHERE lower(email) = lower($1)", email)
        == 1
    )
    requester = await create_requester(workers_client, email=email)
    assert requester.id != first.id


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "admin", "name": "x", "email": "a@example.com"},
        {"kind": "worker", "name": "", "email": "a@example.com"},
        {"kind": "worker", "name": "x", "email": "not-an-email"},
        {"kind": "worker", "name": "x", "email": "a@example.com", "country": "XX"},
        {"kind": "worker", "name": "x", "email": "a@example.com", "languages": ["zz"]},
        {"kind": "worker", "name": "x", "email": "a@example.com", "balance": "10.00"},
    ],
)
async def test_invalid_sign_up_is_422_and_creates_nothing(
    workers_client: httpx.AsyncClient, db, body: dict
) -> None:
    before = await db.fetchval("SELECT count(*) FROM accounts")
    resp = await workers_client.post("/v1/accounts", json=body)
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["code"] == "validation_error" and problem["status"] == 422
    assert problem["errors"] and all("loc" in e and "msg" in e for e in problem["errors"])
    assert await db.fetchval("SELECT count(*) FROM accounts") == before


async def test_malformed_json_is_400(workers_client: httpx.AsyncClient) -> None:
    resp = await workers_client.post(
        "/v1/accounts", content=b'{"kind": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "malformed_json"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer mk_unknownunknownunknownunknownunknown000"},
        {"Authorization": "Bearer not-even-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_missing_or_unknown_key_is_401(workers_client: httpx.AsyncClient, headers) -> None:
    resp = await workers_client.get("/v1/accounts/me", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["code"] == "unauthorized"
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_keys_are_hashed_listed_and_revoked_at_once(
    workers_client: httpx.AsyncClient, db
) -> None:
    worker = await create_worker(workers_client)
    resp = await workers_client.post(
        "/v1/accounts/me/api-keys", json={"name": "laptop"}, headers=worker.headers
    )
    assert resp.status_code == 201
    second = resp.json()
    assert second["api_key"].startswith(second["prefix"])
    # only the hash is at rest
    stored = await db.fetch(
        "SELECT prefix, key_hash FROM api_keys WHERE account_id = $1", worker.id
    )
    assert len(stored) == 2
    for row in stored:
        assert worker.api_key.encode() not in bytes(row["key_hash"])
        assert second["api_key"].encode() not in bytes(row["key_hash"])

    listing = await workers_client.get("/v1/accounts/me/api-keys", headers=worker.headers)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert {i["id"] for i in items} >= {second["id"]}
    assert all("api_key" not in i for i in items)
    assert all(set(i) >= {"id", "prefix", "created_at", "last_used_at"} for i in items)

    second_headers = {"Authorization": f"Bearer {second['api_key']}"}
    revoke = await workers_client.delete(
        f"/v1/accounts/me/api-keys/{second['id']}", headers=worker.headers
    )
    assert revoke.status_code == 204
    assert (await workers_client.get("/v1/accounts/me", headers=second_headers)).status_code == 401
    # the first key still works; revoking again is 404
    assert (await workers_client.get("/v1/accounts/me", headers=worker.headers)).status_code == 200
    again = await workers_client.delete(
        f"/v1/accounts/me/api-keys/{second['id']}", headers=worker.headers
    )
    assert again.status_code == 404


async def test_someone_elses_key_cannot_be_revoked(workers_client: httpx.AsyncClient) -> None:
    alice = await create_worker(workers_client)
    bob = await create_requester(workers_client)
    bobs = (await workers_client.post("/v1/accounts/me/api-keys", headers=bob.headers)).json()
    resp = await workers_client.delete(
        f"/v1/accounts/me/api-keys/{bobs['id']}", headers=alice.headers
    )
    assert resp.status_code == 404
    bob_key = {"Authorization": f"Bearer {bobs['api_key']}"}
    assert (await workers_client.get("/v1/accounts/me", headers=bob_key)).status_code == 200


async def test_api_key_listing_paginates(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client)
    for _ in range(4):
        await workers_client.post("/v1/accounts/me/api-keys", headers=worker.headers)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await workers_client.get(
                "/v1/accounts/me/api-keys", params=params, headers=worker.headers
            )
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    bad = await workers_client.get(
        "/v1/accounts/me/api-keys", params={"cursor": "!!!"}, headers=worker.headers
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
