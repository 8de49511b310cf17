"""SQL for tasks: the bulk COPY of an upload and the owner's reads (Core: option-built reads;
the upload's COPY goes through the driver's binary protocol, see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from services.tasks.lifecycle.assignment import AssignmentRow
from shared.database import Db, WriteDb, as_row, as_rows
from shared.models import Assignment, Project, Task
from shared.pagination import newest_first

COPY_COLUMNS = (
    "id",
    "project_id",
    "requester_id",
    "external_id",
    "input",
    "gold_answer",
    "explanation",
    "max_assignments",
    "open_slots",
    "status",
    "expires_at",
)


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    project_id: str
    requester_id: str
    external_id: str | None
    input: dict[str, Any]
    gold_answer: Any
    explanation: str | None
    max_assignments: int
    open_slots: int
    status: str
    created_at: datetime
    expires_at: datetime | None
    disposed_at: datetime | None


# A task without its own expiry (uploaded before publish) expires with its project: reads show
# the project's `tasks_expire_at` (NULL while the project is a draft, as before publish).
_TASK_COLS = (
    Task.id,
    Task.project_id,
    Task.requester_id,
    Task.external_id,
    Task.input,
    Task.gold_answer,
    Task.explanation,
    Task.max_assignments,
    Task.open_slots,
    Task.status,
    Task.created_at,
    func.coalesce(Task.expires_at, Project.tasks_expire_at).label("expires_at"),
    Task.disposed_at,
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

EXPIRY_FROM_NOW_SQL = "SELECT now() + make_interval(secs => $1::double precision)"


async def expiry_from_now(db: WriteDb, *, lifetime_seconds: int) -> datetime:
    """The transaction's `now()` plus a lifetime: every task of one upload expires together."""
    return await db.fetchval(EXPIRY_FROM_NOW_SQL, lifetime_seconds)


async def copy_tasks(db: WriteDb, records: Sequence[tuple[Any, ...]]) -> None:
    """COPY the rows in (binary protocol, inside the request's transaction): the fastest way
    Postgres takes 10,000 rows, and a failure leaves nothing behind."""
    await db.copy_records_to_table("tasks", records=records, columns=COPY_COLUMNS)


async def list_tasks(
    db: Db,
    *,
    project_id: str,
    status: str | None,
    before_id: str | None,
    limit: int,
    include_disposed: bool = False,
) -> list[TaskRow]:
    stmt = select(*_TASK_COLS).join(Project, Project.id == Task.project_id)
    stmt = stmt.where(Task.project_id == project_id)
    if not include_disposed:
        stmt = stmt.where(Task.disposed_at.is_(None))
    if status is not None:
        stmt = stmt.where(Task.status == status)
    stmt = newest_first(stmt, Task.id, before_id=before_id, limit=limit)
    return as_rows(TaskRow, await db.fetch(stmt))


async def get_task(db: Db, *, task_id: str, requester_id: str) -> TaskRow | None:
    stmt = (
        select(*_TASK_COLS)
        .join(Project, Project.id == Task.project_id)
        .where(Task.id == task_id, Task.requester_id == requester_id)
    )
    return as_row(TaskRow, await db.fetchrow(stmt))


async def assignments_of_tasks(db: Db, task_ids: Sequence[str]) -> list[AssignmentRow]:
    """Every assignment of a page of tasks in one query (uq (task_id, worker_id) is the index)."""
    if not task_ids:
        return []
    stmt = (
        select(*_ASSIGNMENT_COLS)
        .where(Assignment.task_id.in_(list(task_ids)))
        .order_by(Assignment.task_id, Assignment.id)
    )
    return as_rows(AssignmentRow, await db.fetch(stmt))
