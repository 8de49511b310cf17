"""One dependency for the busiest routes: who calls, on which connection, with which key.

Accept, submit, return, approve and reject each need the authenticated caller of one role, an
autocommit connection on the hot pool (shared.database.AutocommitDb) and the request's
Idempotency-Key. Declared as
three dependencies, FastAPI resolves five (the role check, the key lookup, the connection, the
idempotency helper and the bearer scheme), each with its own bookkeeping: a route with only
these measured 130-139 µs per request in-process against 96-102 µs for the same route with
them resolved here in one (FastAPI 0.165). Same checks, same order, same errors: 401 for a
missing or unknown key, 403 `wrong_role`, then 422 for a malformed Idempotency-Key.

The dependency is a plain function, not a generator: FastAPI runs a generator dependency's
exit through an AsyncExitStack, an async context manager and a shielded cancel scope on every
request. So the connection is taken by `HotCall.run`, around the route's work, and handed back
there (every hot route's body is that one call), and authentication, which needs a connection
only when the key is not cached (or its last use is due to be recorded), takes one for each of
those statements (`_ConnectionPerStatement`); a request never holds two connections at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param

from shared.auth import AccountKind, Caller, authenticate, bearer_scheme, presented_key
from shared.database import AutocommitDb, Database, Writable
from shared.errors import Forbidden
from shared.idempotency import (
    Idempotency,
    IdempotencyKeyHeader,
    checked_idempotency_key,
    encode_result,
    idempotent_response,
)


@dataclass(frozen=True, slots=True)
class HotCall:
    caller: Caller
    database: Database
    request: Request
    idempotency_key: str | None

    @property
    def account_id(self) -> str:
        return self.caller.account_id

    async def run(self, action: Callable[[Writable], Awaitable[Any]]) -> Response:
        """The route's work, once per Idempotency-Key of this caller (`Idempotency.run`), on an
        autocommit hot-pool connection taken for it and handed back when it is done."""
        async with self.database.autocommit(hot=True) as db:
            idem = Idempotency(db, self.request, self.idempotency_key)
            return await idem.run(self.caller, action)

    def answer(self, result: Any) -> Response:
        """The response `run` gives for `result` when there is no Idempotency-Key, for work
        done without a connection of the request's own (a coalesced write:
        shared/coalescing.py)."""
        route = self.request.scope.get("route")
        return idempotent_response(
            getattr(route, "status_code", None) or 200, encode_result(result), False
        )


class _ConnectionPerStatement:
    """What `authenticate` runs on (its key lookup and its last-use touch, each one statement
    in autocommit): a hot-pool connection per statement, only when one is needed."""

    __slots__ = ("_database",)

    def __init__(self, database: Database) -> None:
        self._database = database

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with self._database.autocommit(hot=True) as db:
            return await db.fetchrow(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self._database.autocommit(hot=True) as db:
            return await db.execute(query, *args)


async def _hot_call(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    idempotency_key: str | None,
    kind: AccountKind,
) -> HotCall:
    key = presented_key(credentials)
    database: Database = request.app.state.database
    statements = cast(AutocommitDb, _ConnectionPerStatement(database))
    caller = await authenticate(request, statements, key)
    if caller.kind != kind:
        raise Forbidden(f"This endpoint is for {kind} accounts.", code="wrong_role")
    return HotCall(caller, database, request, checked_idempotency_key(idempotency_key))


def hot_call(kind: AccountKind):
    async def _resolve(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> HotCall:
        return await _hot_call(request, credentials, idempotency_key, kind)

    _resolve.required_kind = kind  # type: ignore[attr-defined]  # read by the route-table tests
    _resolve.__name__ = f"hot_{kind}_call"
    return _resolve


def _bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """What `bearer_scheme` (HTTPBearer, auto_error=False) makes of the request's headers."""
    authorization = request.headers.get("Authorization")
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


class HotRoute(APIRoute):
    """A route whose parameters are its path's strings, one `WorkerCallDep`/`RequesterCallDep`
    and optionally the Request, answered without FastAPI's per-request dependency solving.

    FastAPI solves a route's dependencies afresh on every request: it walks the dependency
    tree, validates each header and path parameter through pydantic and keeps a cache, which
    costs a heartbeat (the request every open work session sends every few seconds) about as
    much as its share of the statement does. For the signatures this class accepts, the
    answer is known in advance: the path parameters as strings, and the caller built by
    `_hot_call` from the two headers, exactly as `hot_call`'s dependency does (same checks,
    same order, same errors). OpenAPI is still generated from the declared signature, so the
    documents do not change. Any other signature is refused when the app is built, never
    served half-solved."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        _check_effective_dependant(self)
        call_param, kind, path_params, request_param = _hot_signature(self.dependant, self.path)
        endpoint = cast(Callable[..., Coroutine[Any, Any, Response]], self.dependant.call)

        async def handle(request: Request) -> Response:
            call = await _hot_call(
                request,
                _bearer_credentials(request),
                request.headers.get("Idempotency-Key"),
                kind,
            )
            values = request.path_params
            kwargs: dict[str, Any] = {name: values[name] for name in path_params}
            kwargs[call_param] = call
            if request_param is not None:
                kwargs[request_param] = request
            return await endpoint(**kwargs)

        return handle


def _hot_signature(
    dependant: Dependant, path: str
) -> tuple[str, AccountKind, list[str], str | None]:
    """(the HotCall parameter, its account kind, the path parameters, the Request parameter), or
    TypeError when the route asks for anything HotRoute does not provide."""
    unsupported = (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.http_connection_param_name
        or dependant.security_scopes_param_name
    )
    hot = [d for d in dependant.dependencies if hasattr(d.call, "required_kind")]
    if unsupported or len(dependant.dependencies) != 1 or len(hot) != 1 or hot[0].name is None:
        raise TypeError(
            f"{path}: a HotRoute takes only path strings, one hot_call dependency and the Request"
        )
    path_params = []
    for field in dependant.path_params:
        if field.field_info.annotation is not str:
            raise TypeError(f"{path}: HotRoute path parameters are strings ({field.name})")
        path_params.append(field.name)
    kind = cast(AccountKind, hot[0].call.required_kind)  # type: ignore[union-attr]
    return hot[0].name, kind, path_params, dependant.request_param_name


def _check_effective_dependant(route: APIRoute) -> None:
    """A router included with dependencies of its own would add them to the route's effective
    dependant (FastAPI builds the handler inside that context): HotRoute would skip them, so
    it refuses instead."""
    from fastapi import routing

    context_var = getattr(routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    effective = getattr(context, "dependant", None)
    if effective is not None and len(effective.dependencies) != len(route.dependant.dependencies):
        raise TypeError(f"{route.path}: a HotRoute cannot take its router's dependencies")


WorkerCallDep = Annotated[HotCall, Depends(hot_call("worker"))]
"""The worker and the Idempotency-Key; `run` does the work on an autocommit hot-pool connection
(the queue's routes)."""
RequesterCallDep = Annotated[HotCall, Depends(hot_call("requester"))]
"""The requester and the Idempotency-Key; `run` does the work on an autocommit hot-pool
connection (approve, reject)."""
