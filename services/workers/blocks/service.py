"""Blocks: a requester keeps a worker away from all of its work (eligibility fails every guard).

Blocking is idempotent by nature: blocking an already blocked worker returns the existing block
unchanged (its first reason and time), so a retried request can never pile up rows.
"""

from __future__ import annotations

from services.workers.blocks import repository
from services.workers.blocks.repository import BlockRow
from services.workers.blocks.schemas import BlockCreate, BlockRead
from services.workers.profiles.service import WorkerNotFound, worker_exists
from shared.database import Db, WriteDb
from shared.errors import NotFound
from shared.ids import new_id
from shared.pagination import Page, PageParams


class BlockNotFound(NotFound):
    code = "block_not_found"


async def block_worker(db: WriteDb, *, requester_id: str, data: BlockCreate) -> BlockRead:
    if not await worker_exists(db, worker_id=data.worker_id):
        raise WorkerNotFound("Worker not found.")
    row = await repository.insert_block(
        db,
        block_id=new_id(),
        requester_id=requester_id,
        worker_id=data.worker_id,
        reason=data.reason,
    )
    if row is None:
        row = await repository.get_block(db, requester_id=requester_id, worker_id=data.worker_id)
        assert row is not None  # the conflicting row; blocks are only deleted by their owner
    return _read(row)


async def unblock_worker(db: WriteDb, *, requester_id: str, worker_id: str) -> None:
    if not await repository.delete_block(db, requester_id=requester_id, worker_id=worker_id):
        raise BlockNotFound("This worker is not blocked.")


async def list_blocks(db: Db, *, requester_id: str, page: PageParams) -> Page[BlockRead]:
    rows = await repository.list_blocks(
        db, requester_id=requester_id, before_id=page.before, limit=page.fetch
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[_read(r) for r in items], next_cursor=next_cursor)


def _read(row: BlockRow) -> BlockRead:
    return BlockRead(worker_id=row.worker_id, reason=row.reason, created_at=row.created_at)
