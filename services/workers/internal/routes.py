"""Service-to-service endpoints of the workers service (X-Internal-Token required)."""

from __future__ import annotations

from fastapi import APIRouter

from services.workers.accounts import service as accounts_service
from services.workers.accounts.schemas import AccountRead
from shared.auth import InternalDep
from shared.db import SessionDep
from shared.errors import NotFound, Unauthorized, error_responses

router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[InternalDep])


@router.get(
    "/accounts/{account_id}",
    response_model=AccountRead,
    responses=error_responses(Unauthorized, NotFound),
)
async def get_account(account_id: str, session: SessionDep) -> AccountRead:
    return await accounts_service.get_account(session, account_id=account_id)
