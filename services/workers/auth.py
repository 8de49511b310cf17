"""An optional API key, for the endpoints the contract opens to "anyone" (type search and read).

No key: the public view. A key: the caller is known (an owner then sees its answer keys); a wrong
or revoked key is still 401, so a client with a broken key finds out instead of silently getting
the anonymous view. (Candidate for shared/auth.py as `OptionalCallerDep`.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import Caller, get_caller
from shared.db import SessionDep

_optional_bearer = HTTPBearer(
    auto_error=False, description="Optional here: an API key from POST /v1/accounts"
)


async def get_optional_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
) -> Caller | None:
    if credentials is None:
        return None
    return await get_caller(request, session, credentials)


OptionalCallerDep = Annotated[Caller | None, Depends(get_optional_caller)]
