"""Two idempotency mechanisms MTurk clients rely on.

1. **`amz-sdk-invocation-id`** (sent by botocore on every call, the same on its retries of
   that call): a write's first response is stored and replayed (protocol.py calls
   `begin_invocation` / `finish_invocation`; the op authors do nothing). The claim is a row
   inserted before the operation runs; a concurrent retry waits for the first to finish and
   replays it; a retry after a ServiceFault (the row is dropped) runs again. The same id with a
   different body is refused. Kept 24 hours. The operation's effect and the stored response are
   two commits: a process dying between them makes the retry run the operation again, so
   operations that move money also pass `call.idempotency_key(...)` to payments, which then
   moves it once whatever happens (shared/idempotency.py on its side).
2. **`UniqueRequestToken`** (CreateHIT, CreateHITWithHITType, SendBonus,
   CreateAdditionalAssignmentsForHIT): the op calls `claim_request_token` inside the
   transaction that does the work; a second use within 24 hours is MTurk's error
   (TurkErrorCode `AWS.MechanicalTurk.DuplicateRequest`, the op's message). The claim
   commits or rolls back with the work, so a failed first call does not burn the token, and
   a concurrent second use waits on the first's row and then fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.tasks.mturk.errors import DUPLICATE_REQUEST, MTurkRequestError, MTurkServiceFault
from shared.database import Database, WriteDb

if TYPE_CHECKING:
    from services.tasks.mturk.registry import MTurkCall

WINDOW = "24 hours"
ABANDONED_AFTER = "2 minutes"
PENDING_WAIT_SECONDS = 10.0
_PRUNE_PROBABILITY = 1 / 200
_MAX_INVOCATION_ID = 64

_CLAIM_INVOCATION_SQL = """
    INSERT INTO mturk_invocations (requester_id, invocation_id, request_hash)
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1
"""
_EXPIRE_INVOCATION_SQL = f"""
    DELETE FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2
      AND created_at < now() - interval '{WINDOW}'
"""
_READ_INVOCATION_SQL = f"""
    SELECT request_hash, status_code, response_body,
           created_at < now() - interval '{WINDOW}' AS expired,
           status_code IS NULL
             AND created_at < now() - interval '{ABANDONED_AFTER}' AS abandoned
    FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2
"""
# A claim whose call died (the process killed mid-call, or storing its answer failed) is
# taken over by the next retry once it is older than any call can run.
_ABANDON_INVOCATION_SQL = f"""
    DELETE FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2
      AND status_code IS NULL AND created_at < now() - interval '{ABANDONED_AFTER}'
"""
_STORE_INVOCATION_SQL = """
    UPDATE mturk_invocations SET status_code = $3, response_body = $4
    WHERE requester_id = $1 AND invocation_id = $2
"""
_DROP_INVOCATION_SQL = """
    DELETE FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2
      AND status_code IS NULL
"""
_PRUNE_SQL = f"""
    WITH old_invocations AS (
        DELETE FROM mturk_invocations WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM mturk_invocations
            WHERE created_at < now() - interval '{WINDOW}' LIMIT 500))
    )
    DELETE FROM mturk_request_tokens WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM mturk_request_tokens
        WHERE created_at < now() - interval '{WINDOW}' LIMIT 500))
"""
_CLAIM_TOKEN_SQL = f"""
    INSERT INTO mturk_request_tokens AS t (requester_id, scope, token, resource_id)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (requester_id, scope, token) DO UPDATE
        SET resource_id = EXCLUDED.resource_id, created_at = now()
        WHERE t.created_at < now() - interval '{WINDOW}'
    RETURNING 1
"""
_SET_TOKEN_RESOURCE_SQL = """
    UPDATE mturk_request_tokens SET resource_id = $4
    WHERE requester_id = $1 AND scope = $2 AND token = $3
"""
_TOKEN_RESOURCE_SQL = f"""
    SELECT resource_id FROM mturk_request_tokens
    WHERE requester_id = $1 AND scope = $2 AND token = $3
      AND created_at >= now() - interval '{WINDOW}'
"""


def request_hash(operation: str, body: bytes) -> bytes:
    return hashlib.sha256(operation.encode() + b"\n" + body).digest()


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    requester_id: str
    invocation_id: str


async def begin_invocation(
    database: Database, requester_id: str, invocation_id: str, digest: bytes
) -> Claimed | Replay:
    """Claim the invocation id, or the first response to replay (waiting while the first call
    is still running, up to PENDING_WAIT_SECONDS, then a retryable ServiceFault)."""
    if len(invocation_id) > _MAX_INVOCATION_ID:
        raise MTurkRequestError(
            "The amz-sdk-invocation-id header is longer than 64 characters.",
            "AWS.ParameterOutOfRange",
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PENDING_WAIT_SECONDS
    delay = 0.02
    while True:
        async with database.autocommit() as db:
            if random.random() < _PRUNE_PROBABILITY:
                await db.execute(_PRUNE_SQL)
            if await db.fetchval(_CLAIM_INVOCATION_SQL, requester_id, invocation_id, digest):
                return Claimed(requester_id, invocation_id)
            row = await db.fetchrow(_READ_INVOCATION_SQL, requester_id, invocation_id)
        if row is None:
            continue  # the first call failed and dropped its claim: claim again
        if row["expired"] or row["abandoned"]:
            async with database.autocommit() as db:
                await db.execute(
                    _EXPIRE_INVOCATION_SQL if row["expired"] else _ABANDON_INVOCATION_SQL,
                    requester_id,
                    invocation_id,
                )
            continue
        if bytes(row["request_hash"]) != digest:
            raise MTurkRequestError(
                "The amz-sdk-invocation-id was already used for a different request.",
                DUPLICATE_REQUEST,
            )
        if row["status_code"] is not None:
            return Replay(row["status_code"], bytes(row["response_body"]))
        if loop.time() >= deadline:
            raise MTurkServiceFault("The same request is still being processed. Please try again.")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def finish_invocation(
    database: Database, claimed: Claimed, status_code: int, body: bytes
) -> None:
    """Store the response to replay (success or RequestError); a ServiceFault drops the claim
    so that botocore's retry runs the call again."""
    async with database.autocommit() as db:
        if status_code >= 500:
            await db.execute(_DROP_INVOCATION_SQL, claimed.requester_id, claimed.invocation_id)
        else:
            await db.execute(
                _STORE_INVOCATION_SQL,
                claimed.requester_id,
                claimed.invocation_id,
                status_code,
                body,
            )


async def claim_request_token(
    db: WriteDb,
    call: MTurkCall,
    *,
    scope: str,
    token: str | None,
    duplicate_message: str,
    resource_id: str | None = None,
) -> None:
    """Record `UniqueRequestToken` in the op's own transaction; MTurk's error if it was used
    within 24 hours (in `scope`: "HIT" for CreateHIT and CreateHITWithHITType, "Bonus" for
    SendBonus, ...). No token: nothing to do. E.g. CreateHIT's message (best knowledge):
    "There is already a HIT with this unique request token."."""
    if not token:
        return
    claimed = await db.fetchval(_CLAIM_TOKEN_SQL, call.requester_id, scope, token, resource_id)
    if not claimed:
        raise MTurkRequestError(duplicate_message, DUPLICATE_REQUEST)


async def set_request_token_resource(
    db: WriteDb, call: MTurkCall, *, scope: str, token: str | None, resource_id: str
) -> None:
    """Remember what a token created (when it was claimed before the id existed)."""
    if token:
        await db.execute(_SET_TOKEN_RESOURCE_SQL, call.requester_id, scope, token, resource_id)


async def request_token_resource(
    db: WriteDb, call: MTurkCall, *, scope: str, token: str
) -> str | None:
    """What an unexpired token created (for a message that names it)."""
    return await db.fetchval(_TOKEN_RESOURCE_SQL, call.requester_id, scope, token)


def downstream_key(call: MTurkCall, purpose: str) -> str:
    """An Idempotency-Key for a call the op makes to another service: stable across the
    client's retries of this call (same invocation id), distinct per purpose."""
    if call.invocation_id:
        seed = f"mturk:{call.requester_id}:{call.invocation_id}:{call.operation}:{purpose}"
        return "mturk-" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex
    return "mturk-" + uuid.uuid4().hex
