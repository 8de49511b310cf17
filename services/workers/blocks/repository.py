"""SQL for a requester's blocks of workers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.workers import WorkerBlock

_COLS = (WorkerBlock.worker_id, WorkerBlock.reason, WorkerBlock.created_at)


async def insert_block(
    session: AsyncSession, *, block_id: str, requester_id: str, worker_id: str, reason: str
) -> Row | None:
    """None when the block already exists (blocking twice keeps the first block)."""
    stmt = (
        pg_insert(WorkerBlock)
        .values(id=block_id, requester_id=requester_id, worker_id=worker_id, reason=reason)
        .on_conflict_do_nothing(index_elements=[WorkerBlock.worker_id, WorkerBlock.requester_id])
        .returning(*_COLS)
    )
    return (await session.execute(stmt)).first()


async def get_block(session: AsyncSession, *, requester_id: str, worker_id: str) -> Row | None:
    stmt = select(*_COLS).where(
        WorkerBlock.requester_id == requester_id, WorkerBlock.worker_id == worker_id
    )
    return (await session.execute(stmt)).first()


async def delete_block(session: AsyncSession, *, requester_id: str, worker_id: str) -> bool:
    stmt = (
        delete(WorkerBlock)
        .where(WorkerBlock.requester_id == requester_id, WorkerBlock.worker_id == worker_id)
        .returning(WorkerBlock.id)
    )
    return (await session.execute(stmt)).first() is not None


async def list_blocks(
    session: AsyncSession, *, requester_id: str, before_id: str | None, limit: int
) -> Sequence[Row]:
    stmt = (
        select(*_COLS, WorkerBlock.id)
        .where(WorkerBlock.requester_id == requester_id)
        .order_by(WorkerBlock.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(WorkerBlock.id < before_id)
    return (await session.execute(stmt)).all()
