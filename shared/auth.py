"""Who is calling: API keys for the public API, a shared token for `/internal/*`.

Keys live in the shared `api_keys` table. Each process keeps the keys it has seen in memory
(`ApiKeyCache`): a key's owner and kind never change, only its revocation, and a trigger on
`api_keys` (migration 0008) sends a notification on the `api_key_revoked` channel in the
revoking transaction, which every process listens to (shared.notifications). So a revoked key
stops working:
- in the process that revoked it, before the revocation commits (`forget_api_key_in_process`);
- in every other process and replica as soon as Postgres delivers the notification: on an idle
  host before the client's next request (the bench counts requests served after a revoke),
  under heavy load a few milliseconds later;
- and if the listening connection is down, no process serves from its cache at all, while an
  entry never lives longer than `api_key_cache_seconds` either way.
The lookup on a miss is one indexed statement on the request's own connection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.database import AutocommitDb, Db, RequestConnection
from shared.errors import Forbidden, Unauthorized, error_responses
from shared.ratelimit import TrustedProxies

AccountKind = Literal["requester", "worker"]
KEY_PREFIX = "mk_"
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from POST /v1/accounts")
_internal_header = APIKeyHeader(name="X-Internal-Token", auto_error=False)


@dataclass(frozen=True, slots=True)
class Caller:
    account_id: str
    kind: AccountKind
    key_id: str


API_KEY_REVOKED_CHANNEL = "api_key_revoked"
"""Notified with the key's id by the trigger on api_keys (revoked_at set, or the row deleted)."""
TOUCH_INTERVAL_SECONDS = 60.0
"""last_used_at is stamped at most this often per key and process."""


@dataclass(slots=True)
class _CachedKey:
    caller: Caller
    expires_at: float
    touch_due_at: float


class ApiKeyCache:
    """The keys this process has authenticated, by hash: the lookup is skipped while the entry
    is younger than `ttl_seconds` and the listener that would report its revocation is up.

    A lookup races a revocation: it may read the key before the revoking transaction commits
    and store it after the notification has been handled. `generation` closes that window: it
    moves on every forget and reset, and `store` keeps only an entry whose lookup began in the
    current generation.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        is_listening: Callable[[], bool],
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._is_listening = is_listening
        self._max_entries = max_entries
        self._clock = clock
        self._by_hash: dict[bytes, _CachedKey] = {}
        self._hash_by_key_id: dict[str, bytes] = {}
        self.generation = 0
        _caches_in_process.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self._is_listening()

    def __len__(self) -> int:
        return len(self._by_hash)

    def get(self, key_hash: bytes) -> Caller | None:
        entry = self._by_hash.get(key_hash)
        if entry is None:
            return None
        if not self._is_listening() or entry.expires_at <= self._clock():
            self._drop(key_hash)
            return None
        return entry.caller

    def store(self, key_hash: bytes, caller: Caller, *, generation: int) -> None:
        """Cache a key just read from the database by a lookup that began in `generation`."""
        if generation != self.generation or not self.enabled:
            return
        if len(self._by_hash) >= self._max_entries:
            self._drop(next(iter(self._by_hash)))  # the oldest entry
        now = self._clock()
        self._by_hash[key_hash] = _CachedKey(
            caller, now + self.ttl_seconds, now + TOUCH_INTERVAL_SECONDS
        )
        self._hash_by_key_id[caller.key_id] = key_hash

    def touch_due(self, key_hash: bytes) -> bool:
        """True at most once per TOUCH_INTERVAL_SECONDS for a cached key: time to stamp
        last_used_at again."""
        entry = self._by_hash.get(key_hash)
        now = self._clock()
        if entry is None or entry.touch_due_at > now:
            return False
        entry.touch_due_at = now + TOUCH_INTERVAL_SECONDS
        return True

    def forget(self, key_id: str) -> None:
        """The key was revoked (notification payload: its id)."""
        self.generation += 1
        key_hash = self._hash_by_key_id.get(key_id)
        if key_hash is not None:
            self._drop(key_hash)

    def clear(self) -> None:
        """Listening stopped or started again: revocations may have been missed."""
        self.generation += 1
        self._by_hash.clear()
        self._hash_by_key_id.clear()

    def _drop(self, key_hash: bytes) -> None:
        entry = self._by_hash.pop(key_hash, None)
        if entry is not None:
            self._hash_by_key_id.pop(entry.caller.key_id, None)


_caches_in_process: weakref.WeakSet[ApiKeyCache] = weakref.WeakSet()


def forget_api_key_in_process(key_id: str) -> None:
    """Called by the revoking request itself: its own process (every app in it, as in the test
    suite) stops accepting the key before the response, without waiting for the notification."""
    for cache in list(_caches_in_process):
        cache.forget(key_id)


def generate_api_key() -> tuple[str, str, bytes]:
    """A new key: (the key shown once, its visible prefix, its hash for storage)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    return key, key[: len(KEY_PREFIX) + 8], hash_api_key(key)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


# Auth runs on every request: its lookup is a hand-tuned statement (docs/architecture.md; the
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


def presented_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The key from the Authorization header, refused before any database work if malformed."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <api_key>'.")
    key = credentials.credentials
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise Unauthorized("Unknown or revoked API key.")
    return key


async def authenticate(request: Request, db: Db, key: str) -> Caller:
    """The caller behind `key`: from the process's cache, or looked up on the request's own
    connection (in the request's transaction, or on its own (autocommit) on the hot paths'
    connection, shared.hot_path)."""
    cache: ApiKeyCache = request.app.state.api_key_cache
    key_hash = hash_api_key(key)
    caller = cache.get(key_hash)
    if caller is not None:
        touch = cache.touch_due(key_hash)
    else:
        generation = cache.generation
        row = await db.fetchrow(_LOOKUP, key_hash)
        if row is None:
            raise Unauthorized("Unknown or revoked API key.")
        caller = Caller(account_id=row["account_id"], kind=row["kind"], key_id=row["id"])
        touch = row["stale"]
        cache.store(key_hash, caller, generation=generation)
    # Per account, not per key: keys are cheap to mint (shared.ratelimit). Spent from this
    # process's lease of the account's budget; the statement taking the next lease (once per
    # k requests of a busy account) runs on the request's connection when it is an autocommit
    # one, else on the limiter's own (never in the request's transaction, which would hold the
    # counter row locked until its commit).
    await request.app.state.account_rate_limiter.check(
        caller.account_id, db if isinstance(db, AutocommitDb) else None
    )
    if touch:
        await db.execute(_TOUCH, caller.key_id)
    return caller


async def get_caller(
    request: Request,
    conn: RequestConnection,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    key = presented_key(credentials)
    return await authenticate(request, Db(conn), key)


async def get_optional_caller(
    request: Request,
    conn: RequestConnection,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller | None:
    """For endpoints the contract opens to "anyone": no key gives the public view; a wrong or
    revoked key is still 401, so a client with a broken key finds out instead of silently
    getting the anonymous view."""
    if credentials is None:
        return None
    return await get_caller(request, conn, credentials)


def require_kind(kind: AccountKind):
    async def _require(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.kind != kind:
            raise Forbidden(f"This endpoint is for {kind} accounts.", code="wrong_role")
        return caller

    _require.required_kind = kind  # type: ignore[attr-defined]  # read by the route-table tests
    return _require


CallerDep = Annotated[Caller, Depends(get_caller)]
OptionalCallerDep = Annotated[Caller | None, Depends(get_optional_caller)]
RequesterDep = Annotated[Caller, Depends(require_kind("requester"))]
WorkerDep = Annotated[Caller, Depends(require_kind("worker"))]


async def require_internal(
    request: Request,
    token: Annotated[str | None, Depends(_internal_header)],
) -> None:
    expected = request.app.state.settings.internal_token.get_secret_value()
    # Constant-time comparison: the token must not leak through response timing.
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("Missing or wrong internal token.", code="internal_token_required")


InternalDep = Depends(require_internal)


def client_key(request: Request) -> str:
    """The client's rate-limit bucket: its address, believed from X-Forwarded-For only when the
    TCP peer is a configured proxy (`*_FORWARDED_ALLOW_IPS`; shared.ratelimit.TrustedProxies).
    uvicorn runs with --no-proxy-headers, so `request.client` is always the TCP peer."""
    trusted: TrustedProxies = request.app.state.trusted_proxies
    peer = request.client.host if request.client else None
    return trusted.client_key(peer, request.headers.getlist("x-forwarded-for"))


async def limit_by_client_address(request: Request) -> None:
    """For unauthenticated endpoints that create things (sign-up)."""
    await request.app.state.signup_rate_limiter.check(client_key(request))


SignupRateLimitDep = Depends(limit_by_client_address)


def internal_router(prefix: str, *, tag: str = "internal") -> APIRouter:
    """A router of service-to-service paths: X-Internal-Token required on every route (so each
    may answer 401), served but not in the public document."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[InternalDep],
        responses=error_responses(Unauthorized),
        include_in_schema=False,
    )
