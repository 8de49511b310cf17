"""SQL for changing one task: its locked row as the rules need it, and the updates (Core; the
writes are one row each, off every hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from shared.database import Db, WriteDb, as_row
from shared.models import Assignment, Project, Task


@dataclass(frozen=True, slots=True)
class LockedTask:
    """A task row locked `FOR UPDATE`, with its effective expiry (its own, else its project's)
    compared with the transaction's clock."""

    id: str
    project_id: str
    status: str
    max_assignments: int
    open_slots: int
    approved_slots: int
    reopened_count: int
    disposed_at: datetime | None
    expires_at: datetime | None
    past_expiry: bool
    now: datetime


async def project_of_task(db: Db, *, task_id: str, requester_id: str) -> str | None:
    """The project of the requester's task; None for a missing task or someone else's."""
    stmt = select(Task.project_id).where(Task.id == task_id, Task.requester_id == requester_id)
    return await db.fetchval(stmt)


_EFFECTIVE_EXPIRY = func.coalesce(Task.expires_at, Project.tasks_expire_at)


async def lock_task(db: WriteDb, *, task_id: str) -> LockedTask:
    """Call with the project row locked first (the global order: projects, then tasks)."""
    stmt = (
        select(
            Task.id,
            Task.project_id,
            Task.status,
            Task.max_assignments,
            Task.open_slots,
            Task.approved_slots,
            Task.reopened_count,
            Task.disposed_at,
            _EFFECTIVE_EXPIRY.label("expires_at"),
            func.coalesce(_EFFECTIVE_EXPIRY <= func.now(), False).label("past_expiry"),
            func.now().label("now"),
        )
        .join(Project, Project.id == Task.project_id)
        .where(Task.id == task_id)
        .with_for_update(of=Task)
    )
    row = as_row(LockedTask, await db.fetchrow(stmt))
    assert row is not None  # the caller found it; tasks are never deleted
    return row


async def live_assignments(db: WriteDb, *, task_id: str) -> int:
    """The task's accepted and submitted assignments. Its own statement after `lock_task`, so
    its snapshot is taken once the lock is held: an assignment whose review or return committed
    meanwhile already gave its slot back (counted here as not live), one still running will give
    it back to the row after us (counted live). A snapshot older than the lock could count an
    approval both live and in `approved_slots`."""
    stmt = select(func.count()).where(
        Assignment.task_id == task_id, Assignment.status.in_(("accepted", "submitted"))
    )
    return int(await db.fetchval(stmt))


async def update_task(db: WriteDb, *, task_id: str, values: dict[str, Any]) -> None:
    await db.execute(update(Task).where(Task.id == task_id).values(**values))
