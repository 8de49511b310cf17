"""Service-to-service endpoints of the workers service (X-Internal-Token required)."""

from __future__ import annotations

from dataclasses import asdict

from services.workers.accounts import service as accounts_service
from services.workers.accounts.schemas import AccountRead
from services.workers.internal.schemas import EligibilityAnswer, EligibilityQuery
from shared.auth import internal_router
from shared.database import ReadDbDep
from shared.eligibility import ProjectRules, evaluate_eligibility
from shared.errors import NotFound, ValidationFailed, error_responses

router = internal_router("/internal")


@router.get(
    "/accounts/{account_id}",
    response_model=AccountRead,
    responses=error_responses(NotFound),
)
async def get_account(account_id: str, db: ReadDbDep) -> AccountRead:
    return await accounts_service.get_account(db, account_id=account_id)


@router.post(
    "/workers/{worker_id}/eligibility",
    response_model=EligibilityAnswer,
    responses=error_responses(ValidationFailed),
    summary="shared/eligibility.py over HTTP, for callers outside Python (the tasks service "
    "calls the library in-process instead: no hop on the accept path)",
)
async def evaluate(worker_id: str, body: EligibilityQuery, db: ReadDbDep) -> EligibilityAnswer:
    projects = [ProjectRules(**p.model_dump()) for p in body.projects]
    results = await evaluate_eligibility(
        db,
        worker_id=worker_id,
        projects=projects,
    )
    return EligibilityAnswer.model_validate(
        {"results": {pid: asdict(e) for pid, e in results.items()}}
    )
