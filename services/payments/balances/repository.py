"""Reads of the tasks service's `assignments` table for a worker's pending earnings (Core)."""

from __future__ import annotations

from sqlalchemy import BigInteger, func, select

from shared.database import Db
from shared.models.assignments import Assignment


async def pending_rewards(db: Db, *, worker_id: str) -> int:
    stmt = select(func.coalesce(func.sum(Assignment.reward_cents), 0).cast(BigInteger)).where(
        Assignment.worker_id == worker_id, Assignment.status == "submitted"
    )
    return await db.fetchval(stmt)
