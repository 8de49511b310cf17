"""Service-to-service endpoints of the workers service (X-Internal-Token required)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import status

from services.workers.accounts import service as accounts_service
from services.workers.accounts.schemas import AccountRead
from services.workers.blocks import service as blocks_service
from services.workers.blocks.schemas import BlockCreate, BlockRead
from services.workers.clock import NowDep
from services.workers.grants import service as grants_service
from services.workers.grants.schemas import GrantRead
from services.workers.internal.schemas import (
    EligibilityAnswer,
    EligibilityQuery,
    TrainingGrantIn,
)
from services.workers.levels import service as levels
from shared.auth import internal_router
from shared.database import ReadDbDep, WriteDbDep
from shared.eligibility import ProjectRules, evaluate_eligibility
from shared.errors import Forbidden, NotFound, ValidationFailed, error_responses
from shared.pagination import Page, PageDep

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


@router.post(
    "/qualification-grants",
    response_model=GrantRead,
    responses=error_responses(NotFound, Forbidden, ValidationFailed),
    summary="Grant a requester's qualification to a worker (a training pass, from the tasks "
    "outbox); idempotent: the grant is set to `value` however often it arrives",
)
async def grant_from_training(body: TrainingGrantIn, db: WriteDbDep, now: NowDep) -> GrantRead:
    # The owner's own rules (its type, an existing worker), as a direct grant by the owner.
    grant, _created = await grants_service.set_grant(
        db,
        owner_id=body.requester_id,
        type_id=body.qualification_type_id,
        worker_id=body.worker_id,
        value=body.value,
        now=now,
    )
    # A training pass counts as a qualification test passed on the worker ladder.
    await levels.on_test_passed(
        db,
        worker_id=body.worker_id,
        qualification_type_id=body.qualification_type_id,
        value=body.value,
        via="training",
        now=now,
    )
    return grant


# A requester's blocks on its behalf (the MTurk door's CreateWorkerBlock, DeleteWorkerBlock,
# ListWorkerBlocks): the public routes' service functions, the requester named in the path.


@router.post(
    "/requesters/{requester_id}/blocks",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockRead,
    responses=error_responses(NotFound, ValidationFailed),
)
async def block_worker(requester_id: str, body: BlockCreate, db: WriteDbDep) -> BlockRead:
    return await blocks_service.block_worker(db, requester_id=requester_id, data=body)


@router.delete(
    "/requesters/{requester_id}/blocks/{worker_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(NotFound),
)
async def unblock_worker(requester_id: str, worker_id: str, db: WriteDbDep) -> None:
    await blocks_service.unblock_worker(db, requester_id=requester_id, worker_id=worker_id)


@router.get(
    "/requesters/{requester_id}/blocks",
    response_model=Page[BlockRead],
    responses=error_responses(ValidationFailed),
)
async def list_blocks(requester_id: str, db: ReadDbDep, page: PageDep) -> Page[BlockRead]:
    return await blocks_service.list_blocks(db, requester_id=requester_id, page=page)
