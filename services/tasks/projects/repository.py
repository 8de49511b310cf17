"""SQL for projects: rows, live counts and money, state changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row, bindparam, func, insert, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Project

_PROJECT_COLS = tuple(Project.__table__.c)


async def insert_project(session: AsyncSession, values: dict[str, Any]) -> Row:
    stmt = insert(Project).values(**values).returning(*_PROJECT_COLS)
    return (await session.execute(stmt)).one()


ProjectLock = Literal["change", "close"]


async def get_project(
    session: AsyncSession, *, project_id: str, requester_id: str, lock: ProjectLock | None = None
) -> Row | None:
    """The requester's project; another requester's is None, exactly like a missing one.

    Every change of a project (edit, publish, pause, resume, upload) takes `FOR NO KEY UPDATE`
    ("change"), so they run one at a time and money is reserved once per change. Close takes
    `FOR UPDATE` ("close"), which also waits out the queue side's `FOR KEY SHARE` (a slot being
    given back): no slot can reopen in a project whose unused money close is releasing. Changes
    other than close do not block those slot returns, so a 10,000-task upload never stalls the
    queue.
    """
    stmt = select(*_PROJECT_COLS).where(
        Project.id == project_id, Project.requester_id == requester_id
    )
    if lock is not None:
        stmt = stmt.with_for_update(key_share=lock == "change")
    return (await session.execute(stmt)).first()


async def list_projects(
    session: AsyncSession, *, requester_id: str, before_id: str | None, limit: int
) -> Sequence[Row]:
    stmt = (
        select(*_PROJECT_COLS)
        .where(Project.requester_id == requester_id)
        .order_by(Project.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(Project.id < before_id)
    return (await session.execute(stmt)).all()


async def update_project(session: AsyncSession, *, project_id: str, values: dict[str, Any]) -> Row:
    stmt = (
        update(Project)
        .where(Project.id == project_id)
        .values(**values, updated_at=func.now())
        .returning(*_PROJECT_COLS)
    )
    return (await session.execute(stmt)).one()


@dataclass(frozen=True, slots=True)
class ProjectStats:
    tasks: int = 0
    open_slots: int = 0
    accepted: int = 0
    submitted: int = 0
    approved: int = 0
    rejected: int = 0
    live_cents: int = 0  # reward + fee of accepted and submitted assignments
    approved_cents: int = 0  # reward + fee of approved assignments


_TASK_TOTALS = text(
    """
    SELECT project_id, count(*) AS tasks, coalesce(sum(open_slots), 0) AS open_slots
    FROM tasks WHERE project_id IN :ids GROUP BY project_id
    """
).bindparams(bindparam("ids", expanding=True))

_ASSIGNMENT_TOTALS = text(
    """
    SELECT project_id, status, count(*) AS n, coalesce(sum(reward_cents + fee_cents), 0) AS cents
    FROM assignments
    WHERE project_id IN :ids AND status IN ('accepted', 'submitted', 'approved', 'rejected')
    GROUP BY project_id, status
    """
).bindparams(bindparam("ids", expanding=True))


async def project_stats(
    session: AsyncSession, project_ids: Sequence[str]
) -> dict[str, ProjectStats]:
    """Live counts for a page of projects in two grouped queries (tasks, then assignments)."""
    if not project_ids:
        return {}
    ids = list(project_ids)
    acc: dict[str, dict[str, int]] = {pid: {} for pid in ids}
    for row in (await session.execute(_TASK_TOTALS, {"ids": ids})).all():
        acc[row.project_id].update(tasks=row.tasks, open_slots=row.open_slots)
    for row in (await session.execute(_ASSIGNMENT_TOTALS, {"ids": ids})).all():
        entry = acc[row.project_id]
        entry[row.status] = row.n
        if row.status in ("accepted", "submitted"):
            entry["live_cents"] = entry.get("live_cents", 0) + row.cents
        elif row.status == "approved":
            entry["approved_cents"] = row.cents
    return {pid: ProjectStats(**values) for pid, values in acc.items()}


# Publish's value for `projects.tasks_expire_at`: the transaction's now() (the same instant as
# its published_at) plus the project row's own lifetime_seconds.
TASKS_EXPIRE_AT_ON_PUBLISH = literal_column("now() + make_interval(secs => lifetime_seconds)")


_CLOSE_DRAFT_SLOTS = text("UPDATE tasks SET open_slots = 0 WHERE project_id = :project_id")


async def close_draft_slots(session: AsyncSession, *, project_id: str) -> None:
    """A closed draft never reserved money: its slots simply stop existing."""
    await session.execute(_CLOSE_DRAFT_SLOTS, {"project_id": project_id})


_ACTIVE_TYPES = text(
    "SELECT id FROM qualification_types WHERE id IN :ids AND status = 'active'"
).bindparams(bindparam("ids", expanding=True))


async def active_qualification_type_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = (await session.execute(_ACTIVE_TYPES, {"ids": list(ids)})).all()
    return {r.id for r in rows}


_GOLD_ANSWERS = text(
    """
    SELECT id, gold_answer FROM tasks
    WHERE project_id = :project_id AND gold_answer IS NOT NULL ORDER BY id
    """
)


async def gold_answers(session: AsyncSession, *, project_id: str) -> Sequence[Row]:
    return (await session.execute(_GOLD_ANSWERS, {"project_id": project_id})).all()
