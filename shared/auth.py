"""Who is calling: API keys for the public API, a shared token for `/internal/*`.

Every service authenticates a key with one indexed lookup on the shared `api_keys` table on
every request (no cache), so a revoked key stops working on every service at once.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

import asyncpg
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.db import ConnectionDep, SessionDep, driver_connection
from shared.errors import Forbidden, Unauthorized

AccountKind = Literal["requester", "worker"]
KEY_PREFIX = "mk_"
_bearer = HTTPBearer(auto_error=False, description="An API key from POST /v1/accounts")
_internal_header = APIKeyHeader(name="X-Internal-Token", auto_error=False)


@dataclass(frozen=True, slots=True)
class Caller:
    account_id: str
    kind: AccountKind
    key_id: str


def generate_api_key() -> tuple[str, str, bytes]:
    """A new key: (the key shown once, its visible prefix, its hash for storage)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    return key, key[: len(KEY_PREFIX) + 8], hash_api_key(key)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


# Auth runs on every request: the lookup goes straight to asyncpg (the hot paths' rule; the
# bench measured +31% accept→submit cycles/s against SQLAlchemy Core here).
_LOOKUP = """
    SELECT k.id, k.account_id, a.kind,
           (k.last_used_at IS NULL OR k.last_used_at < now() - interval '60 seconds') AS stale
    FROM api_keys k JOIN accounts a ON a.id = k.account_id
    WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""
# Touch last_used_at at most once a minute, and never wait for a row another request holds.
_TOUCH = """
    UPDATE api_keys SET last_used_at = now()
    WHERE id = (SELECT id FROM api_keys WHERE id = $1 FOR UPDATE SKIP LOCKED)
"""


def _presented_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The key from the Authorization header, refused before any database work if malformed."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <api_key>'.")
    key = credentials.credentials
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise Unauthorized("Unknown or revoked API key.")
    return key


async def authenticate(request: Request, conn: asyncpg.Connection, key: str) -> Caller:
    """The caller behind `key`, looked up on `conn`: in the request's transaction on a session,
    on its own (autocommit) on ConnectionDep."""
    row = await conn.fetchrow(_LOOKUP, hash_api_key(key))
    if row is None:
        raise Unauthorized("Unknown or revoked API key.")
    request.app.state.key_rate_limiter.check(row["id"])
    if row["stale"]:
        await conn.execute(_TOUCH, row["id"])
    return Caller(account_id=row["account_id"], kind=row["kind"], key_id=row["id"])


async def get_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    key = _presented_key(credentials)
    return await authenticate(request, await driver_connection(session), key)


async def get_caller_on_connection(
    request: Request,
    conn: ConnectionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """get_caller for routes on the driver pool (ConnectionDep): the same lookup, on the
    request's connection."""
    return await authenticate(request, conn, _presented_key(credentials))


async def get_optional_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller | None:
    """For endpoints the contract opens to "anyone": no key gives the public view; a wrong or
    revoked key is still 401, so a client with a broken key finds out instead of silently
    getting the anonymous view."""
    if credentials is None:
        return None
    return await get_caller(request, session, credentials)


def require_kind(kind: AccountKind, *, on_connection: bool = False):
    caller_dependency = get_caller_on_connection if on_connection else get_caller

    async def _require(caller: Caller) -> Caller:
        if caller.kind != kind:
            raise Forbidden(f"This endpoint is for {kind} accounts.", code="wrong_role")
        return caller

    # The dependency is chosen at run time, so it is handed to FastAPI as a signature object
    # (a postponed annotation naming a local could not be resolved).
    _require.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "caller",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[Caller, Depends(caller_dependency)],
            )
        ],
        return_annotation=Caller,
    )
    _require.required_kind = kind  # type: ignore[attr-defined]  # read by the route-table tests
    return _require


CallerDep = Annotated[Caller, Depends(get_caller)]
OptionalCallerDep = Annotated[Caller | None, Depends(get_optional_caller)]
RequesterDep = Annotated[Caller, Depends(require_kind("requester"))]
WorkerDep = Annotated[Caller, Depends(require_kind("worker"))]
WorkerOnConnectionDep = Annotated[Caller, Depends(require_kind("worker", on_connection=True))]
"""WorkerDep for routes on the driver pool (ConnectionDep)."""
RequesterOnConnectionDep = Annotated[Caller, Depends(require_kind("requester", on_connection=True))]
"""RequesterDep for routes on the driver pool (ConnectionDep)."""


async def require_internal(
    request: Request,
    token: Annotated[str | None, Depends(_internal_header)],
) -> None:
    expected = request.app.state.settings.internal_token.get_secret_value()
    # Constant-time comparison: the token must not leak through response timing.
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("Missing or wrong internal token.", code="internal_token_required")


InternalDep = Depends(require_internal)


async def limit_by_client_address(request: Request) -> None:
    """For unauthenticated endpoints that create things (sign-up)."""
    address = request.client.host if request.client else "unknown"
    request.app.state.signup_rate_limiter.check(address)


SignupRateLimitDep = Depends(limit_by_client_address)
"""Put on internal routers: `APIRouter(prefix="/internal", dependencies=[InternalDep])`."""
