"""SQL for tasks: the bulk COPY of an upload and the owner's reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Assignment, Project, Task

COPY_COLUMNS = (
    "id",
    "project_id",
    "requester_id",
    "external_id",
    "input",
    "gold_answer",
    "max_assignments",
    "open_slots",
    "status",
    "expires_at",
)
# A task without its own expiry (uploaded before publish) expires with its project: reads show
# the project's `tasks_expire_at` (NULL while the project is a draft, as before publish).
_TASK_COLS = (
    Task.id,
    Task.project_id,
    Task.requester_id,
    Task.external_id,
    Task.input,
    Task.gold_answer,
    Task.max_assignments,
    Task.open_slots,
    Task.status,
    Task.created_at,
    func.coalesce(Task.expires_at, Project.tasks_expire_at).label("expires_at"),
)
_ASSIGNMENT_COLS = (
    Assignment.id,
    Assignment.task_id,
    Assignment.project_id,
    Assignment.worker_id,
    Assignment.status,
    Assignment.answer,
    Assignment.feedback,
    Assignment.reward_cents,
    Assignment.accepted_at,
    Assignment.deadline,
    Assignment.submitted_at,
    Assignment.reviewed_at,
    Assignment.auto_approve_at,
)


async def expiry_from_now(conn: asyncpg.Connection, *, lifetime_seconds: int) -> datetime:
    """The transaction's `now()` plus a lifetime: every task of one upload expires together."""
    return await conn.fetchval(
        "SELECT now() + make_interval(secs => $1::double precision)", lifetime_seconds
    )


async def copy_tasks(conn: asyncpg.Connection, records: Sequence[tuple[Any, ...]]) -> None:
    """COPY the rows in (binary protocol, inside the request's transaction): the fastest way
    Postgres takes 10,000 rows, and a failure leaves nothing behind."""
    await conn.copy_records_to_table("tasks", records=records, columns=COPY_COLUMNS)


async def list_tasks(
    session: AsyncSession,
    *,
    project_id: str,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> Sequence[Row]:
    stmt = select(*_TASK_COLS).join(Project, Project.id == Task.project_id)
    stmt = stmt.where(Task.project_id == project_id)
    if status is not None:
        stmt = stmt.where(Task.status == status)
    if before_id is not None:
        stmt = stmt.where(Task.id < before_id)
    stmt = stmt.order_by(Task.id.desc()).limit(limit)
    return (await session.execute(stmt)).all()


async def get_task(session: AsyncSession, *, task_id: str, requester_id: str) -> Row | None:
    stmt = (
        select(*_TASK_COLS)
        .join(Project, Project.id == Task.project_id)
        .where(Task.id == task_id, Task.requester_id == requester_id)
    )
    return (await session.execute(stmt)).first()


async def assignments_of_tasks(session: AsyncSession, task_ids: Sequence[str]) -> Sequence[Row]:
    """Every assignment of a page of tasks in one query (uq (task_id, worker_id) is the index)."""
    if not task_ids:
        return []
    stmt = (
        select(*_ASSIGNMENT_COLS)
        .where(Assignment.task_id.in_(list(task_ids)))
        .order_by(Assignment.task_id, Assignment.id)
    )
    return (await session.execute(stmt)).all()
