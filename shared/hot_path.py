"""One dependency for the busiest routes: who calls, on which connection, with which key.

Accept, submit, return, approve and reject each need the authenticated caller of one role, an
autocommit connection on the hot pool (shared.database.AutocommitDb) and the request's
Idempotency-Key. Declared as
three dependencies, FastAPI resolves five (the role check, the key lookup, the connection, the
idempotency helper and the bearer scheme), each with its own bookkeeping: a route with only
these measured 130-139 µs per request in-process against 96-102 µs for the same route with
them resolved here in one (FastAPI 0.165). Same checks, same order, same errors: 401 for a
missing or unknown key, 403 `wrong_role`, then 422 for a malformed Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from shared.auth import AccountKind, Caller, authenticate, bearer_scheme, presented_key
from shared.database import AutocommitDb, Database, Writable
from shared.errors import Forbidden
from shared.idempotency import Idempotency, IdempotencyKeyHeader, checked_idempotency_key


@dataclass(frozen=True, slots=True)
class HotCall:
    caller: Caller
    db: AutocommitDb
    idem: Idempotency

    @property
    def account_id(self) -> str:
        return self.caller.account_id

    async def run(self, action: Callable[[Writable], Awaitable[Any]]) -> Response:
        """The route's work, once per Idempotency-Key of this caller (`Idempotency.run`)."""
        return await self.idem.run(self.caller, action)


def hot_call(kind: AccountKind):
    async def _resolve(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> AsyncIterator[HotCall]:
        key = presented_key(credentials)
        database: Database = request.app.state.database
        async with database.autocommit(hot=True) as db:
            caller = await authenticate(request, db, key)
            if caller.kind != kind:
                raise Forbidden(f"This endpoint is for {kind} accounts.", code="wrong_role")
            idem = Idempotency(db, request, checked_idempotency_key(idempotency_key))
            yield HotCall(caller, db, idem)

    _resolve.required_kind = kind  # type: ignore[attr-defined]  # read by the route-table tests
    _resolve.__name__ = f"hot_{kind}_call"
    return _resolve


WorkerCallDep = Annotated[HotCall, Depends(hot_call("worker"))]
"""The worker, an autocommit hot-pool connection and the Idempotency-Key (the queue's routes)."""
RequesterCallDep = Annotated[HotCall, Depends(hot_call("requester"))]
"""The requester, an autocommit hot-pool connection and the Idempotency-Key (approve, reject)."""
