"""Accounts after the security review: one account per normalised e-mail address and kind
(enforced by the database, also under a race), and `Idempotency-Key` on sign-up and key
creation, replaying the one-time API key without keeping it at rest in clear."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.workers.accounts.replay import (
    SEALED_PREFIX,
    ReplayUnavailable,
    key_digest,
    seal,
    unseal,
)
from shared.models.accounts import normalize_email
from tests.conftest import ROOT, with_database
from tests.fixtures.accounts import create_worker

MIGRATION = ROOT / "migrations" / "versions" / "2026_12_04_0009_account_email_normalized.py"


def fullwidth(text: str) -> str:
    """ASCII letters and digits as their fullwidth forms (U+FF10...): `a` -> U+FF41."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def _variants(tag: str) -> tuple[str, list[str]]:
    """One address (ASCII local part with a unique suffix) and ways to write it that are the
    same address once normalised."""
    suffix = uuid.uuid4().hex[:10]
    base = f"élodie.{tag}.{suffix}@example.com"
    return base, [
        base,
        f"Élodie.{tag}.{suffix}@example.com",  # upper case outside ASCII (C locale: not folded)
        unicodedata.normalize("NFD", base),  # decomposed é
        f"ÉLODIE.{tag.upper()}.{suffix.upper()}@EXAMPLE.COM",
        f"élodie.{tag}.{fullwidth(suffix)}@example.com",  # fullwidth digits and letters
        f"élodie.{tag}.{suffix}@{fullwidth('EXAMPLE')}.com",  # fullwidth domain
    ]


def test_normalisation_rule() -> None:
    assert normalize_email("Élodie@X.org") == normalize_email("élodie@x.org") == "élodie@x.org"
    nfd = unicodedata.normalize("NFD", "élodie@x.org")
    assert nfd != "élodie@x.org" and normalize_email(nfd) == "élodie@x.org"
    assert normalize_email(fullwidth("elodie") + "@x.org") == "elodie@x.org"
    assert normalize_email("STRASSE@x.org") == normalize_email("straße@x.org")
    assert normalize_email("elodie@x.org") != normalize_email("élodie@x.org")  # accents count


def test_the_migration_backfills_with_the_same_rule() -> None:
    spec = importlib.util.spec_from_file_location("migration_0009", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    samples = [v for tag in ("a", "b") for v in _variants(tag)[1]]
    samples += ["İstanbul@x.org", "ﬁle@x.org", "Ω@x.org", "ǅ@x.org", "ẞ@x.org"]
    for sample in samples:
        assert module.normalize_email(sample) == normalize_email(sample), sample


async def _sign_up(client: httpx.AsyncClient, url: str, email: str, kind: str = "worker", **kw):
    return await client.post(
        url + "/v1/accounts", json={"kind": kind, "name": "Élodie", "email": email}, **kw
    )


async def test_unicode_variants_of_one_address_are_one_account(
    workers_client: httpx.AsyncClient, db
) -> None:
    base, variants = _variants("seq")
    first = await _sign_up(workers_client, "", variants[0])
    assert first.status_code == 201, first.text
    assert first.json()["account"]["email"] == base  # kept as typed
    for variant in variants[1:]:
        resp = await _sign_up(workers_client, "", variant)
        assert resp.status_code == 409, (variant, resp.text)
        assert resp.json()["code"] == "email_taken"
    other_kind = await _sign_up(workers_client, "", variants[3], kind="requester")
    assert other_kind.status_code == 201
    rows = await db.fetch(
        "SELECT kind, email_normalized FROM accounts WHERE email_normalized = $1",
        normalize_email(base),
    )
    assert sorted(r["kind"] for r in rows) == ["requester", "worker"]


async def test_the_database_refuses_a_second_normalised_address(db) -> None:
    """The rule holds without the application: a unique index on (kind, email_normalized),
    compared bytewise (COLLATE "C") whatever the cluster's locale."""
    normalized = normalize_email(_variants("db")[0])
    insert = (
        "INSERT INTO accounts (id, kind, name, email, email_normalized)"
        " VALUES ($1, 'worker', 'x', $2, $3)"
    )
    ids = [f"HARD{uuid.uuid4().hex[:12].upper()}" for _ in range(2)]
    await db.execute(insert, ids[0], "a@x", normalized)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await db.execute(insert, ids[1], "b@x", normalized)
        with pytest.raises(asyncpg.NotNullViolationError):
            await db.execute(
                "INSERT INTO accounts (id, kind, name, email) VALUES ($1, 'worker', 'x', 'c@x')",
                ids[1],
            )
        collation = await db.fetchval(
            """SELECT collation_name FROM information_schema.columns
               WHERE table_name = 'accounts' AND column_name = 'email_normalized'"""
        )
        assert collation == "C"
    finally:
        await db.execute("DELETE FROM accounts WHERE id = ANY($1::text[])", ids)


async def test_concurrent_sign_ups_with_different_forms_make_one_account(live_services, db) -> None:
    """Real concurrent requests to the workers process: one 201, every other form 409."""
    url = live_services.urls["workers"]
    async with httpx.AsyncClient(timeout=30) as client:
        for round_ in range(5):
            base, variants = _variants(f"race{round_}")
            results = await asyncio.gather(*(_sign_up(client, url, v) for v in variants * 2))
            statuses = sorted(r.status_code for r in results)
            assert statuses == [201] + [409] * (len(variants) * 2 - 1), statuses
            assert {r.json()["code"] for r in results if r.status_code == 409} == {"email_taken"}
            count = await db.fetchval(
                "SELECT count(*) FROM accounts WHERE kind = 'worker' AND email_normalized = $1",
                normalize_email(base),
            )
            assert count == 1


# --------------------------------------------------------------------------- Idempotency-Key


def _idem(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


async def test_sign_up_replays_the_first_response_with_its_key(
    workers_client: httpx.AsyncClient, db
) -> None:
    email = f"idem-{uuid.uuid4().hex[:10]}@example.com"
    headers = _idem()
    first = await _sign_up(workers_client, "", email, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["Idempotent-Replayed"] == "false"
    again = await _sign_up(workers_client, "", email, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # same body, the one-time key included
    key = first.json()["api_key"]
    me = await workers_client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 1
    # another body with the same key: 409, nothing created
    other = f"idem-other-{uuid.uuid4().hex[:10]}@example.com"
    reused = await _sign_up(workers_client, "", other, headers=headers)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", other) == 0
    # no key, same body: the e-mail is taken, as before
    plain = await _sign_up(workers_client, "", email)
    assert plain.status_code == 409 and plain.json()["code"] == "email_taken"
    # at rest: neither the API key nor the Idempotency-Key in clear
    row = await db.fetchrow(
        "SELECT * FROM signup_idempotency_keys WHERE key_digest = $1",
        key_digest("signup", headers["Idempotency-Key"]),
    )
    assert row is not None and row["account_id"] == first.json()["account"]["id"]
    stored = bytes(row["response_body"])
    assert key.encode() not in stored and key[11:].encode() not in stored
    assert headers["Idempotency-Key"].encode() not in b"".join(
        bytes(v) if isinstance(v, bytes) else str(v).encode() for v in row.values()
    )


async def test_a_failed_sign_up_is_not_stored(workers_client: httpx.AsyncClient) -> None:
    taken = (await create_worker(workers_client)).email
    headers = _idem()
    resp = await _sign_up(workers_client, "", taken, headers=headers)
    assert resp.status_code == 409 and resp.json()["code"] == "email_taken"
    fresh = f"idem-fresh-{uuid.uuid4().hex[:10]}@example.com"
    # the key was not spent on the error: another body under it acts
    assert (await _sign_up(workers_client, "", fresh, headers=headers)).status_code == 201


async def test_concurrent_retries_of_one_sign_up_share_one_account(live_services, db) -> None:
    url = live_services.urls["workers"]
    email = f"idem-race-{uuid.uuid4().hex[:10]}@example.com"
    headers = _idem()
    async with httpx.AsyncClient(timeout=30) as client:
        results = await asyncio.gather(
            *(_sign_up(client, url, email, headers=headers) for _ in range(6))
        )
    assert [r.status_code for r in results] == [201] * 6, [r.text for r in results]
    assert len({r.json()["api_key"] for r in results}) == 1
    assert sorted(r.headers["Idempotent-Replayed"] for r in results) == ["false"] + ["true"] * 5
    assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 1


async def test_key_creation_replays_the_first_key(workers_client: httpx.AsyncClient, db) -> None:
    worker = await create_worker(workers_client)
    headers = {**worker.headers, **_idem()}
    url = "/v1/accounts/me/api-keys"
    first = await workers_client.post(url, json={"name": "laptop"}, headers=headers)
    assert first.status_code == 201, first.text
    again = await workers_client.post(url, json={"name": "laptop"}, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    key = first.json()["api_key"]
    me = await workers_client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    count = "SELECT count(*) FROM api_keys WHERE account_id = $1"
    assert await db.fetchval(count, worker.id) == 2
    reused = await workers_client.post(url, json={"name": "phone"}, headers=headers)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert await db.fetchval(count, worker.id) == 2
    # the same Idempotency-Key is another account's own
    other = await create_worker(workers_client)
    theirs = await workers_client.post(
        url,
        json={"name": "laptop"},
        headers={**other.headers, "Idempotency-Key": headers["Idempotency-Key"]},
    )
    assert theirs.status_code == 201 and theirs.json()["api_key"] != key
    rows = await db.fetch(
        "SELECT key, response_body FROM idempotency_keys WHERE account_id = $1", worker.id
    )
    assert len(rows) == 1
    assert headers["Idempotency-Key"] not in rows[0]["key"]
    assert key[11:].encode() not in bytes(rows[0]["response_body"])


async def test_a_replay_is_not_refused_by_the_key_cap(database_url, live_services) -> None:
    from services.workers.app import create_app
    from tests.conftest import make_settings

    settings = make_settings("workers", database_url, live_services.urls).model_copy(
        update={"max_active_api_keys": 2}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await create_worker(client)
            headers = {**worker.headers, **_idem()}
            first = await client.post("/v1/accounts/me/api-keys", headers=headers)
            assert first.status_code == 201  # now at the cap
            again = await client.post("/v1/accounts/me/api-keys", headers=headers)
            assert again.status_code == 201 and again.content == first.content
            fresh = await client.post("/v1/accounts/me/api-keys", headers={**worker.headers})
            assert fresh.status_code == 409 and fresh.json()["code"] == "too_many_api_keys"


def test_sealing() -> None:
    pepper, key = b"server-secret-0123456789", str(uuid.uuid4())
    sealed = seal("mk_secret", pepper=pepper, scope="signup", idempotency_key=key)
    assert "mk_secret" not in sealed
    assert unseal(sealed, pepper=pepper, scope="signup", idempotency_key=key) == "mk_secret"
    assert seal("mk_secret", pepper=pepper, scope="signup", idempotency_key=key) != sealed
    for wrong in (
        {"pepper": b"another-secret-012345678", "scope": "signup", "idempotency_key": key},
        {"pepper": pepper, "scope": "ACCOUNT1", "idempotency_key": key},
        {"pepper": pepper, "scope": "signup", "idempotency_key": key + "x"},
    ):
        with pytest.raises(ReplayUnavailable):
            unseal(sealed, **wrong)
    raw = bytearray(base64.urlsafe_b64decode(sealed.removeprefix(SEALED_PREFIX)))
    raw[-1] ^= 1  # one bit of the ciphertext's tag
    tampered = SEALED_PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(ReplayUnavailable):
        unseal(tampered, pepper=pepper, scope="signup", idempotency_key=key)


# --------------------------------------------------------------------------- the migration


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )


@pytest.fixture
async def scratch_url(postgres_server: str) -> AsyncIterator[str]:
    name = f"test_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_server, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migration_backfills_and_refuses_colliding_rows(scratch_url: str) -> None:
    done = _alembic(scratch_url, "upgrade", "0008_api_key_revocation_notify")
    assert done.returncode == 0, done.stderr[-2000:]
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute(
            """INSERT INTO accounts (id, kind, name, email) VALUES
               ('A1', 'worker', 'x', 'Élodie@example.com'),
               ('A2', 'worker', 'x', 'élodie@example.com'),
               ('A3', 'requester', 'x', 'élodie@example.com'),
               ('A4', 'worker', 'x', $1)""",
            fullwidth("bob") + "@example.com",
        )
    finally:
        await conn.close()
    refused = _alembic(scratch_url, "upgrade", "head")
    assert refused.returncode != 0
    assert "A1, A2" in refused.stderr and "Élodie" not in refused.stderr  # ids, not addresses
    conn = await asyncpg.connect(scratch_url)
    try:
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
        assert version == "0008_api_key_revocation_notify"  # nothing changed
        await conn.execute("DELETE FROM accounts WHERE id = 'A2'")
    finally:
        await conn.close()
    done = _alembic(scratch_url, "upgrade", "head")
    assert done.returncode == 0, done.stderr[-2000:]
    conn = await asyncpg.connect(scratch_url)
    try:
        rows = await conn.fetch("SELECT id, email, email_normalized FROM accounts ORDER BY id")
        assert [(r["id"], r["email_normalized"]) for r in rows] == [
            ("A1", "élodie@example.com"),
            ("A3", "élodie@example.com"),
            ("A4", "bob@example.com"),
        ]
        assert rows[0]["email"] == "Élodie@example.com"  # as typed
    finally:
        await conn.close()
    done = _alembic(scratch_url, "downgrade", "0008_api_key_revocation_notify")
    assert done.returncode == 0, done.stderr[-2000:]
