"""Reads of the tasks service's `assignments` table for a worker's pending earnings."""

from __future__ import annotations

import asyncpg


async def pending_rewards(conn: asyncpg.Connection, *, worker_id: str) -> int:
    return await conn.fetchval(
        """
        SELECT coalesce(sum(reward_cents), 0)::bigint FROM assignments
        WHERE worker_id = $1 AND status = 'submitted'
        """,
        worker_id,
    )
