"""SQL for reading assignments: a worker's own, a project's (the transitions live in
services/tasks/lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass

from services.tasks.lifecycle.assignment import ASSIGNMENT_COLUMNS, AssignmentRow
from shared.database import Db, as_rows


@dataclass(frozen=True, slots=True)
class WorkerAssignmentRow(AssignmentRow):
    project_title: str


_WORKER_COLUMNS = f"{ASSIGNMENT_COLUMNS}, p.title AS project_title"
_LIST_FOR_WORKER = f"""
SELECT {_WORKER_COLUMNS}
FROM assignments a JOIN projects p ON p.id = a.project_id
WHERE a.worker_id = $1 {{status}} {{before}}
ORDER BY a.id DESC
LIMIT $2
"""


async def list_for_worker(
    db: Db, *, worker_id: str, status: str | None, before_id: str | None, limit: int
) -> list[WorkerAssignmentRow]:
    """Newest first along ix_assignments_worker_id_id (a worker's own history is human-sized)."""
    args: list[object] = [worker_id, limit]
    status_sql = before_sql = ""
    if status is not None:
        args.append(status)
        status_sql = f"AND a.status = ${len(args)}"
    if before_id is not None:
        args.append(before_id)
        before_sql = f"AND a.id < ${len(args)}"
    sql = _LIST_FOR_WORKER.format(status=status_sql, before=before_sql)
    return as_rows(WorkerAssignmentRow, await db.fetch(sql, *args))


async def project_owned_by(db: Db, *, project_id: str, requester_id: str) -> bool:
    found = await db.fetchval(
        "SELECT true FROM projects WHERE id = $1 AND requester_id = $2", project_id, requester_id
    )
    return bool(found)


# One index range per status on ix_assignments_project_id_status_id, merged: newest first over
# any set of statuses without sorting the project's whole history.
_LIST_FOR_PROJECT = f"""
SELECT {ASSIGNMENT_COLUMNS}
FROM unnest($2::text[]) AS s(status)
CROSS JOIN LATERAL (
    SELECT * FROM assignments x
    WHERE x.project_id = $1 AND x.status = s.status {{before}}
    ORDER BY x.id DESC
    LIMIT $3
) a
ORDER BY a.id DESC
LIMIT $3
"""
_LIST_FOR_PROJECT_FIRST = _LIST_FOR_PROJECT.format(before="")
_LIST_FOR_PROJECT_NEXT = _LIST_FOR_PROJECT.format(before="AND x.id < $4")


async def list_for_project(
    db: Db, *, project_id: str, statuses: list[str], before_id: str | None, limit: int
) -> list[AssignmentRow]:
    if before_id is None:
        records = await db.fetch(_LIST_FOR_PROJECT_FIRST, project_id, statuses, limit)
    else:
        records = await db.fetch(_LIST_FOR_PROJECT_NEXT, project_id, statuses, limit, before_id)
    return as_rows(AssignmentRow, records)
