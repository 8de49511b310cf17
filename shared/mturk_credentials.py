"""MTurk-style access keys: their secrets sealed at rest, and a per-process cache of them.

SigV4 verification needs the secret itself (it is the HMAC key), so a secret is stored
encrypted, never hashed: AES-256-GCM under a key from the services' settings
(`MTURK_SECRETS_KEY`, base64 of 32 bytes; when unset, derived by HKDF-SHA256 from the required
`INTERNAL_TOKEN`, which every service already shares), with the access key id as associated
data. The workers service issues and revokes credentials; the tasks service's door reads the
same table through this module (one indexed lookup on a miss), as every service already reads
`api_keys` (shared.auth): no internal round trip on the signed path.

Revocation is pushed the way API keys' is: a trigger (migration 0020) notifies
`mturk_credential_revoked` with the access key id in the revoking transaction; every process
LISTENs (shared.notifications, subscribed in shared.app_factory) and drops the entry. The cache
is not used while the listener is down, an entry lives at most `api_key_cache_seconds`, and a
lookup that raced a revocation is not cached (generation counter), exactly as ApiKeyCache.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.database import Db

log = logging.getLogger("mturk.credentials")

MTURK_CREDENTIAL_REVOKED_CHANNEL = "mturk_credential_revoked"
ACCESS_KEY_PREFIX = "AKMT"  # 20 chars in all, like AWS's "AKIA..." ids
_ACCESS_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_NONCE_BYTES = 12


def secrets_key(settings_key: str | None, internal_token: str) -> bytes:
    """The 32-byte AES key: the explicit setting, or one derived from the internal token."""
    if settings_key:
        raw = base64.b64decode(settings_key, validate=True)
        if len(raw) != 32:
            raise ValueError("MTURK_SECRETS_KEY must be base64 of exactly 32 bytes")
        return raw
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mturk-credential-secrets-v1"
    ).derive(internal_token.encode())


def new_access_key_id() -> str:
    return ACCESS_KEY_PREFIX + "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(16))


def new_secret_access_key() -> str:
    """40 characters of base64 (240 random bits), AWS's length and alphabet."""
    return base64.b64encode(secrets.token_bytes(30)).decode()


def seal_secret(key: bytes, access_key_id: str, secret: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode(), access_key_id.encode())


def open_secret(key: bytes, access_key_id: str, sealed: bytes) -> str:
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    return AESGCM(key).decrypt(nonce, ciphertext, access_key_id.encode()).decode()


@dataclass(frozen=True, slots=True)
class MTurkPrincipal:
    access_key_id: str
    account_id: str
    kind: str
    secret: str

    def __repr__(self) -> str:  # never print the secret (logs, tracebacks)
        return f"MTurkPrincipal({self.access_key_id!r}, account={self.account_id!r})"


@dataclass(slots=True)
class _Entry:
    principal: MTurkPrincipal
    expires_at: float


class MTurkCredentialCache:
    def __init__(
        self,
        *,
        ttl_seconds: float,
        is_listening: Callable[[], bool],
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._is_listening = is_listening
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self.generation = 0
        _caches_in_process.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self._is_listening()

    def get(self, access_key_id: str) -> MTurkPrincipal | None:
        entry = self._entries.get(access_key_id)
        if entry is None:
            return None
        if not self._is_listening() or entry.expires_at <= self._clock():
            self._entries.pop(access_key_id, None)
            return None
        return entry.principal

    def store(self, principal: MTurkPrincipal, *, generation: int) -> None:
        if generation != self.generation or not self.enabled:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[principal.access_key_id] = _Entry(principal, self._clock() + self.ttl_seconds)

    def forget(self, access_key_id: str) -> None:
        self.generation += 1
        self._entries.pop(access_key_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


_caches_in_process: weakref.WeakSet[MTurkCredentialCache] = weakref.WeakSet()


def forget_mturk_credential_in_process(access_key_id: str) -> None:
    """The revoking request's own process stops accepting the key before it answers."""
    for cache in list(_caches_in_process):
        cache.forget(access_key_id)


# Runs on every signed call that misses the cache (a process's first call with a key, then
# once per cache lifetime; every call when the cache is off): one primary-key lookup.
_LOOKUP_SQL = """
    SELECT c.account_id, c.secret_ciphertext, a.kind,
           (c.last_used_at IS NULL OR c.last_used_at < now() - interval '60 seconds') AS stale
    FROM mturk_credentials c JOIN accounts a ON a.id = c.account_id
    WHERE c.access_key_id = $1 AND c.revoked_at IS NULL
"""
# last_used_at at most once a minute, never waiting for a row another call holds (the
# revocation trigger fires on revoked_at, not on this column).
_TOUCH_SQL = """
    UPDATE mturk_credentials SET last_used_at = now()
    WHERE access_key_id = (
        SELECT access_key_id FROM mturk_credentials WHERE access_key_id = $1
        FOR UPDATE SKIP LOCKED)
"""


async def resolve_access_key(
    db: Db, cache: MTurkCredentialCache, key: bytes, access_key_id: str
) -> MTurkPrincipal | None:
    """The active credential behind `access_key_id` (cache first), or None."""
    principal = cache.get(access_key_id)
    if principal is not None:
        return principal
    generation = cache.generation
    row = await db.fetchrow(_LOOKUP_SQL, access_key_id)
    if row is None:
        return None
    if row["stale"]:
        await db.execute(_TOUCH_SQL, access_key_id)
    try:
        secret = open_secret(key, access_key_id, row["secret_ciphertext"])
    except InvalidTag:
        # Sealed under another key: MTURK_SECRETS_KEY, or the INTERNAL_TOKEN it is derived
        # from when unset, changed since this credential was made. The caller is refused like
        # an unknown key (its client sees an authentication error, not a fault), and the
        # operator is told why.
        log.error(
            "mturk credential %s does not open with the configured key: MTURK_SECRETS_KEY "
            "(or INTERNAL_TOKEN, which it is derived from when unset) changed since it was "
            "created; restore the old key or have the requester create new credentials",
            access_key_id,
        )
        return None
    principal = MTurkPrincipal(
        access_key_id=access_key_id,
        account_id=row["account_id"],
        kind=row["kind"],
        secret=secret,
    )
    cache.store(principal, generation=generation)
    return principal
