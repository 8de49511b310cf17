"""`Idempotency-Key` on POSTs that create objects or move money.

The key row is inserted in the request's own transaction before the work is done, and the
response is stored in it before commit. A concurrent retry with the same key blocks on that row
and, once the first commits, replays the stored response; if the first rolled back (an error),
the retry runs as if first. Errors are therefore never stored: a 402 followed by a deposit and a
retry acts. Same key with a different body (or another endpoint, or query) is 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import BaseModel

from shared.auth import Caller
from shared.database import AutocommitDb, RequestConnection, Writable, WriteDb
from shared.errors import Conflict, ValidationFailed
from shared.jsonutil import dumps, loads

REPLAY_WINDOW = "24 hours"

# Hand-tuned statements on the request's connection, whichever pool it came from: one code
# path for the routes in a request transaction and the hot paths' autocommit routes.
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


async def request_digest(request: Request) -> bytes:
    """What a replay must match: method, path and body (JSON by meaning). For a replay store of
    its own (services/workers/accounts/replay.py: sign-up)."""
    return _request_hash(request.method, request.url.path, await request.body())


def _path_and_query(request: Request) -> str:
    """The path, and the query when there is one (sorted: parameter order means nothing): a
    POST whose query changes what it does (`?annotations_as_gold=`) is another request. Without
    a query the text is the path alone, so the digests stored before this rule still match."""
    query = request.url.query
    if not query:
        return request.url.path
    return request.url.path + "?" + urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def encode_result(result: Any) -> bytes:
    """A route's result as the JSON body every Idempotency-Key route answers with."""
    # pydantic's own serializer is ~60x faster than jsonable_encoder on large bodies (10k ids).
    if isinstance(result, BaseModel):
        return result.model_dump_json().encode()
    return dumps(jsonable_encoder(result))


def idempotent_response(status_code: int, content: bytes, replayed: bool) -> Response:
    """A JSON body as every Idempotency-Key route answers it: `Idempotent-Replayed` says
    whether it is the stored first result."""
    return Response(
        content=content,
        status_code=status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true" if replayed else "false"},
    )


class Idempotency:
    """Runs a request's work once per (account, Idempotency-Key): the work is handed the
    connection to do it on, inside the transaction that also holds the key row."""

    def __init__(self, db: Writable, request: Request, key: str | None) -> None:
        self.db = db
        self.request = request
        self.key = key

    async def run(
        self,
        caller: Caller,
        action: Callable[[Writable], Awaitable[Any]],
        *,
        status_code: int | None = None,
    ) -> Response:
        """Run `action` once per key; return its result (or the stored first result) as JSON,
        with `status_code`, by default the one the route declares (its `status_code=`, else 200).

        Without a key, `action` runs on the request's own connection (an AutocommitDb stays
        one: a one-statement effect keeps its single round trip). With a key, the key row and
        the work commit together: in the request's transaction, or in one opened here."""
        if status_code is None:
            status_code = getattr(self.request.scope.get("route"), "status_code", None) or 200
        if self.key is None:
            return idempotent_response(status_code, encode_result(await action(self.db)), False)
        if isinstance(self.db, AutocommitDb):
            async with self.db.transaction() as tx:
                return await self._run_once(tx, caller, action, status_code)
        return await self._run_once(self.db, caller, action, status_code)

    async def _run_once(
        self,
        db: WriteDb,
        caller: Caller,
        action: Callable[[Writable], Awaitable[Any]],
        status_code: int,
    ) -> Response:
        account, key = caller.account_id, self.key
        body = await self.request.body()
        digest = _request_hash(self.request.method, _path_and_query(self.request), body)
        await db.execute(_EXPIRE, account, key)
        claimed = await db.fetchval(_CLAIM, account, key, digest)
        if claimed is None:
            row = await db.fetchrow(_READ, account, key)
            if bytes(row["request_hash"]) != digest or row["status_code"] is None:
                raise Conflict(
                    "This Idempotency-Key was already used with a different request.",
                    code="idempotency_key_reused",
                )
            return idempotent_response(row["status_code"], bytes(row["response_body"]), True)
        content = encode_result(await action(db))
        await db.execute(_STORE, account, key, status_code, content)
        return idempotent_response(status_code, content, False)


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
    conn: RequestConnection, request: Request, idempotency_key: IdempotencyKeyHeader = None
) -> Idempotency:
    return Idempotency(WriteDb(conn), request, checked_idempotency_key(idempotency_key))


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
