"""`Idempotency-Key` on POSTs that create objects or move money.

The key row is inserted in the request's own transaction before the work is done, and the
response is stored in it before commit. A concurrent retry with the same key blocks on that row
and, once the first commits, replays the stored response; if the first rolled back (an error),
the retry runs as if first. Errors are therefore never stored: a 402 followed by a deposit and a
retry acts. Same key with a different body (or another endpoint) is 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import BaseModel

from shared.auth import Caller
from shared.db import SessionDep, atomic, driver_connection
from shared.errors import Conflict, ValidationFailed
from shared.jsonutil import dumps, loads

REPLAY_WINDOW = "24 hours"

# Raw SQL on the request's asyncpg connection, whichever pool it came from (SessionDep's through
# driver_connection, or the hot paths' driver pool): one code path for both kinds of routes.
_EXPIRE = f"""DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2
    AND created_at < now() - interval '{REPLAY_WINDOW}'"""
_CLAIM = """INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING RETURNING 1"""
_READ = """SELECT request_hash, status_code, response_body FROM idempotency_keys
    WHERE account_id = $1 AND key = $2"""
_STORE = """UPDATE idempotency_keys SET status_code = $3, response_body = $4
    WHERE account_id = $1 AND key = $2"""


def _request_hash(method: str, path: str, body: bytes) -> bytes:
    try:  # JSON bodies compare by meaning, not by whitespace or key order
        canonical = dumps(_sorted(loads(body))) if body else b""
    except Exception:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).digest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _encode(result: Any) -> bytes:
    # pydantic's own serializer is ~60x faster than jsonable_encoder on large bodies (10k ids).
    if isinstance(result, BaseModel):
        return result.model_dump_json().encode()
    return dumps(jsonable_encoder(result))


class Idempotency:
    def __init__(
        self,
        connection: Callable[[], Awaitable[asyncpg.Connection]],
        request: Request,
        key: str | None,
    ) -> None:
        self.connection = connection
        self.request = request
        self.key = key

    async def run(
        self,
        caller: Caller,
        action: Callable[[], Awaitable[Any]],
        *,
        status_code: int = 201,
    ) -> Response:
        """Run `action` once per key; return its result (or the stored first result) as JSON."""
        if self.key is None:
            return self._response(status_code, _encode(await action()), False)
        conn = await self.connection()
        account, key = caller.account_id, self.key
        body = await self.request.body()
        digest = _request_hash(self.request.method, self.request.url.path, body)
        # The key row and the work commit together (a request on a session is in its
        # transaction already; one on the driver pool gets one here).
        async with atomic(conn):
            await conn.execute(_EXPIRE, account, key)
            claimed = await conn.fetchval(_CLAIM, account, key, digest)
            if claimed is None:
                row = await conn.fetchrow(_READ, account, key)
                if bytes(row["request_hash"]) != digest or row["status_code"] is None:
                    raise Conflict(
                        "This Idempotency-Key was already used with a different request.",
                        code="idempotency_key_reused",
                    )
                return self._response(row["status_code"], bytes(row["response_body"]), True)
            content = _encode(await action())
            await conn.execute(_STORE, account, key, status_code, content)
        return self._response(status_code, content, False)

    @staticmethod
    def _response(status_code: int, content: bytes, replayed: bool) -> Response:
        return Response(
            content=content,
            status_code=status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true" if replayed else "false"},
        )


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="1-255 chars; replays within 24 h."),
]


def checked_idempotency_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not (1 <= len(idempotency_key) <= 255):
        raise ValidationFailed(
            "Idempotency-Key must be 1-255 characters.",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "must be 1-255 characters"}],
        )
    return idempotency_key


async def get_idempotency(
    session: SessionDep, request: Request, idempotency_key: IdempotencyKeyHeader = None
) -> Idempotency:
    return Idempotency(
        lambda: driver_connection(session), request, checked_idempotency_key(idempotency_key)
    )


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
