"""Issue, list and revoke MTurk credentials.

The secret is generated here, sealed (shared.mturk_credentials) before it reaches the database
and returned once; it is never logged (registered with the log redactor for the request) and
never readable again: a lost secret means a new credential.
"""

from __future__ import annotations

from services.workers.mturk_credentials import repository
from services.workers.mturk_credentials.schemas import (
    MTurkCredentialCreated,
    MTurkCredentialList,
)
from shared.database import Db, Writable, WriteDb
from shared.errors import Conflict, NotFound
from shared.mturk_credentials import (
    forget_mturk_credential_in_process,
    new_access_key_id,
    new_secret_access_key,
    seal_secret,
)


class TooManyMTurkCredentials(Conflict):
    code = "too_many_mturk_credentials"


async def create_credential(
    db: WriteDb, *, account_id: str, secrets_key: bytes, max_active: int
) -> MTurkCredentialCreated:
    active = await repository.lock_account_and_count_active(db, account_id)
    if active >= max_active:
        raise TooManyMTurkCredentials(
            f"This account already has {active} active MTurk credentials (at most {max_active}); "
            "revoke one (DELETE /v1/accounts/me/mturk-credentials/{access_key_id}) first."
        )
    access_key_id = new_access_key_id()
    secret = new_secret_access_key()
    row = await repository.insert_credential(
        db,
        access_key_id=access_key_id,
        account_id=account_id,
        secret_ciphertext=seal_secret(secrets_key, access_key_id, secret),
    )
    return MTurkCredentialCreated(**row.model_dump(), secret_access_key=secret)


async def list_credentials(db: Db, *, account_id: str) -> MTurkCredentialList:
    return MTurkCredentialList(items=await repository.list_active(db, account_id))


async def revoke_credential(db: Writable, *, account_id: str, access_key_id: str) -> None:
    """Other processes drop it on the trigger's notification once this commits; this process at
    once."""
    if not await repository.revoke(db, account_id, access_key_id):
        raise NotFound("MTurk credential not found.")
    forget_mturk_credential_in_process(access_key_id)
