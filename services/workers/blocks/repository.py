"""SQL for a requester's blocks of workers (Core: plain CRUD, see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.database import Db, Writable, as_row, as_rows
from shared.models.workers import WorkerBlock
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class BlockRow:
    id: str
    worker_id: str
    reason: str
    created_at: datetime


_COLS = (WorkerBlock.id, WorkerBlock.worker_id, WorkerBlock.reason, WorkerBlock.created_at)


async def insert_block(
    db: Writable, *, block_id: str, requester_id: str, worker_id: str, reason: str
) -> BlockRow | None:
    """None when the block already exists (blocking twice keeps the first block)."""
    stmt = (
        pg_insert(WorkerBlock)
        .values(id=block_id, requester_id=requester_id, worker_id=worker_id, reason=reason)
        .on_conflict_do_nothing(index_elements=[WorkerBlock.worker_id, WorkerBlock.requester_id])
        .returning(*_COLS)
    )
    return as_row(BlockRow, await db.fetchrow(stmt))


async def get_block(db: Db, *, requester_id: str, worker_id: str) -> BlockRow | None:
    stmt = select(*_COLS).where(
        WorkerBlock.requester_id == requester_id, WorkerBlock.worker_id == worker_id
    )
    return as_row(BlockRow, await db.fetchrow(stmt))


async def delete_block(db: Writable, *, requester_id: str, worker_id: str) -> bool:
    stmt = (
        delete(WorkerBlock)
        .where(WorkerBlock.requester_id == requester_id, WorkerBlock.worker_id == worker_id)
        .returning(WorkerBlock.id)
    )
    return await db.fetchval(stmt) is not None


async def list_blocks(
    db: Db, *, requester_id: str, before_id: str | None, limit: int
) -> list[BlockRow]:
    stmt = newest_first(
        select(*_COLS).where(WorkerBlock.requester_id == requester_id),
        WorkerBlock.id,
        before_id=before_id,
        limit=limit,
    )
    return as_rows(BlockRow, await db.fetch(stmt))
