"""Blocks (contract: "Workers and qualifications")."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.workers.blocks import service
from services.workers.blocks.schemas import BlockCreate, BlockRead
from shared.auth import RequesterDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, ValidationFailed, error_responses
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/v1/blocks", tags=["blocks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
    summary="Block a worker from all your work; blocking again returns the existing block",
)
async def block_worker(body: BlockCreate, caller: RequesterDep, idem: IdempotencyDep):
    return await idem.run(
        caller,
        lambda db: service.block_worker(db, requester_id=caller.account_id, data=body),
    )


@router.delete(
    "/{worker_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="Unblock a worker",
)
async def unblock_worker(worker_id: str, caller: RequesterDep, db: WriteDbDep) -> None:
    await service.unblock_worker(db, requester_id=caller.account_id, worker_id=worker_id)


@router.get(
    "",
    response_model=Page[BlockRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Your blocks, newest first",
)
async def list_blocks(caller: RequesterDep, db: ReadDbDep, page: PageDep) -> Page[BlockRead]:
    return await service.list_blocks(db, requester_id=caller.account_id, page=page)
