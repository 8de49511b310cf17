"""Reads of the tasks service's `assignments` table (shared schema; payments never writes it).
Core: a primary-key read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from shared.database import Db, as_row
from shared.models.assignments import Assignment


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    id: str
    requester_id: str
    worker_id: str
    project_id: str
    task_id: str
    status: str


async def get_assignment(db: Db, assignment_id: str) -> AssignmentRow | None:
    stmt = select(
        Assignment.id,
        Assignment.requester_id,
        Assignment.worker_id,
        Assignment.project_id,
        Assignment.task_id,
        Assignment.status,
    ).where(Assignment.id == assignment_id)
    return as_row(AssignmentRow, await db.fetchrow(stmt))
