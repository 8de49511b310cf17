"""`Idempotency-Key` on the two POSTs that return an API key: sign-up and key creation.

The contract's rule holds (same key + same body within 24 h: the first response again, API key
included; same key + another body: 409 `idempotency_key_reused`), without keeping a usable API
key at rest:

- the Idempotency-Key is stored only as a SHA-256 digest (`key_digest`);
- the stored response's `api_key` is sealed (`seal`): encrypted and authenticated with a key
  derived (HMAC-SHA256) from the server's secret (the internal token), a random salt, the scope
  and the Idempotency-Key itself, which is not stored. Opening a stored response takes all of
  them: a database dump alone does not, nor the server secret plus the dump unless one also
  guesses the Idempotency-Key. So the Idempotency-Key must be unguessable (a UUID4 or 128+
  random bits): for sign-up it is the only thing between a stranger who knows the exact body
  and the account's key.

The cipher is AES-256-GCM (`cryptography`); its key is used once (the salt is fresh), so a
fixed nonce is safe, and the scope is authenticated as associated data.

Scopes: sign-up is anonymous, so its keys live in their own table (`signup_idempotency_keys`,
one namespace for everyone; an anonymous key is only as private as it is random); key creation
uses the shared `idempotency_keys` table and mechanism (shared.idempotency), scoped by account
as everywhere else, under the digest. If the server secret changes within 24 h of a first
response, a retry of it cannot be opened any more: 409 `idempotency_replay_unavailable`
(nothing is done twice).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from shared.auth import Caller
from shared.database import Writable, WriteDb, as_row
from shared.errors import Conflict
from shared.idempotency import REPLAY_WINDOW, Idempotency, idempotent_response, request_digest
from shared.jsonutil import dumps, loads

SEALED_PREFIX = "sealed:v1:"
_SALT_BYTES = 16
SIGNUP_SCOPE = "signup"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class ReplayUnavailable(Conflict):
    code = "idempotency_replay_unavailable"


def key_digest(scope_kind: str, idempotency_key: str) -> bytes:
    return hashlib.sha256(
        b"idempotency-key\x00" + scope_kind.encode() + b"\x00" + idempotency_key.encode()
    ).digest()


def _sealing_key(pepper: bytes, scope: str, idempotency_key: str, salt: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"marketplace replay seal v1\x00"
        + scope.encode()
        + b"\x00"
        + idempotency_key.encode(),
    ).derive(pepper)


_NONCE = bytes(12)  # every sealing key seals one message


def seal(plaintext: str, *, pepper: bytes, scope: str, idempotency_key: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _sealing_key(pepper, scope, idempotency_key, salt)
    sealed = AESGCM(key).encrypt(_NONCE, plaintext.encode(), scope.encode())
    return SEALED_PREFIX + base64.urlsafe_b64encode(salt + sealed).decode()


def unseal(token: str, *, pepper: bytes, scope: str, idempotency_key: str) -> str:
    if not token.startswith(SEALED_PREFIX):
        raise ReplayUnavailable("The stored response cannot be replayed.")
    try:
        raw = base64.urlsafe_b64decode(token[len(SEALED_PREFIX) :])
    except ValueError:
        raise ReplayUnavailable("The stored response cannot be replayed.") from None
    salt, sealed = raw[:_SALT_BYTES], raw[_SALT_BYTES:]
    try:
        key = _sealing_key(pepper, scope, idempotency_key, salt)
        return AESGCM(key).decrypt(_NONCE, sealed, scope.encode()).decode()
    except (InvalidTag, ValueError):
        raise ReplayUnavailable(
            "The first response to this Idempotency-Key can no longer be opened (the server's "
            "secret changed since). It was acted on once; nothing is done twice."
        ) from None


def _pepper(request: Request) -> bytes:
    return request.app.state.settings.internal_token.get_secret_value().encode()


def _sealed(
    result: BaseModel, *, pepper: bytes, scope: str, idempotency_key: str
) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json")
    data["api_key"] = seal(
        data["api_key"], pepper=pepper, scope=scope, idempotency_key=idempotency_key
    )
    return data


def _opened_body(stored: bytes, *, pepper: bytes, scope: str, idempotency_key: str) -> bytes:
    data = loads(stored)
    data["api_key"] = unseal(
        data["api_key"], pepper=pepper, scope=scope, idempotency_key=idempotency_key
    )
    return dumps(data)


# Sign-up: the same steps as shared.idempotency, on the anonymous table, in the request's
# transaction (WriteDb): claim the key, act, store; a concurrent retry blocks on the claimed
# row and replays once the first commits, or acts if it rolled back. Hand-tuned statements, as
# shared.idempotency's (one per sign-up that carries a key).
_EXPIRE_SQL = f"""DELETE FROM signup_idempotency_keys WHERE key_digest = $1
    AND created_at < now() - interval '{REPLAY_WINDOW}'"""
_CLAIM_SQL = """INSERT INTO signup_idempotency_keys (key_digest, request_hash) VALUES ($1, $2)
    ON CONFLICT DO NOTHING RETURNING 1"""
_READ_SQL = """SELECT request_hash, status_code, response_body FROM signup_idempotency_keys
    WHERE key_digest = $1"""
_STORE_SQL = """UPDATE signup_idempotency_keys SET status_code = $2, response_body = $3,
    account_id = $4 WHERE key_digest = $1"""


@dataclass(frozen=True, slots=True)
class StoredSignup:
    request_hash: bytes
    status_code: int | None
    response_body: bytes | None


async def run_signup(
    request: Request,
    db: WriteDb,
    idempotency_key: str | None,
    action: Callable[[WriteDb], Awaitable[Any]],
    *,
    account_id: Callable[[Any], str],
) -> Response:
    """Sign up once per Idempotency-Key (anonymous scope); 201 with the account and its key."""
    if idempotency_key is None:
        return idempotent_response(201, (await action(db)).model_dump_json().encode(), False)
    pepper = _pepper(request)
    opened = {"pepper": pepper, "scope": SIGNUP_SCOPE, "idempotency_key": idempotency_key}
    digest = key_digest(SIGNUP_SCOPE, idempotency_key)
    request_hash = await request_digest(request)
    await db.execute(_EXPIRE_SQL, digest)
    if await db.fetchval(_CLAIM_SQL, digest, request_hash) is None:
        row = as_row(StoredSignup, await db.fetchrow(_READ_SQL, digest))
        assert row is not None  # the row our claim conflicted with
        if bytes(row.request_hash) != request_hash or row.status_code is None:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request."
            )
        assert row.response_body is not None
        body = _opened_body(bytes(row.response_body), **opened)
        return idempotent_response(row.status_code, body, True)
    result = await action(db)
    stored = dumps(_sealed(result, **opened))
    await db.execute(_STORE_SQL, digest, 201, stored, account_id(result))
    # Byte for byte what replays send.
    return idempotent_response(201, _opened_body(stored, **opened), False)


async def run_key_creation(
    request: Request,
    db: WriteDb,
    caller: Caller,
    idempotency_key: str | None,
    action: Callable[[WriteDb], Awaitable[Any]],
) -> Response:
    """Create a key once per (account, Idempotency-Key), through shared.idempotency with the
    digest for the key and the API key sealed in the stored response."""
    if idempotency_key is None:
        return idempotent_response(201, (await action(db)).model_dump_json().encode(), False)
    pepper = _pepper(request)
    opened = {"pepper": pepper, "scope": caller.account_id, "idempotency_key": idempotency_key}
    digest = "sha256:" + key_digest("api-key", idempotency_key).hex()
    idem = Idempotency(db, request, digest)

    async def sealed(db: Writable) -> dict[str, Any]:
        # Idempotency stores what the action returns and answers with it: the sealed form,
        # opened below for this response and for every replay alike.
        assert isinstance(db, WriteDb)  # the request's transaction it was given
        return _sealed(await action(db), **opened)

    response = await idem.run(caller, sealed, status_code=201)
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    return idempotent_response(
        response.status_code, _opened_body(bytes(response.body), **opened), replayed
    )
