"""Reads of the tasks service's `assignments` table (shared schema; payments never writes it)."""

from __future__ import annotations

import asyncpg


async def get_assignment(conn: asyncpg.Connection, assignment_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT id, requester_id, worker_id, project_id, task_id, status
        FROM assignments WHERE id = $1
        """,
        assignment_id,
    )
