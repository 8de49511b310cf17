"""Reading assignments: the worker's own, a project's (owner only). Their transitions (accept,
submit, return, expiry, review) live in services/tasks/lifecycle."""

from __future__ import annotations

from services.tasks.assignments import repository
from services.tasks.assignments.schemas import (
    AssignmentRead,
    AssignmentStatus,
    WorkerAssignmentRead,
)
from services.tasks.lifecycle.assignment import assignment_fields, assignment_read
from shared.database import Db
from shared.errors import NotFound
from shared.pagination import Page, PageParams

ALL_STATUSES: list[str] = ["accepted", "submitted", "approved", "rejected", "returned", "expired"]


class ProjectNotFound(NotFound):
    code = "not_found"


async def list_for_worker(
    db: Db, *, worker_id: str, status: AssignmentStatus | None, page: PageParams
) -> Page[WorkerAssignmentRead]:
    rows = await repository.list_for_worker(
        db, worker_id=worker_id, status=status, before_id=page.before, limit=page.fetch
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(
        items=[
            WorkerAssignmentRead(**assignment_fields(r), project_title=r.project_title)
            for r in kept
        ],
        next_cursor=next_cursor,
    )


async def list_for_project(
    db: Db,
    *,
    requester_id: str,
    project_id: str,
    status: AssignmentStatus | None,
    page: PageParams,
) -> Page[AssignmentRead]:
    if not await repository.project_owned_by(db, project_id=project_id, requester_id=requester_id):
        raise ProjectNotFound("Project not found.")
    rows = await repository.list_for_project(
        db,
        project_id=project_id,
        statuses=[status] if status else ALL_STATUSES,
        before_id=page.before,
        limit=page.fetch,
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=[assignment_read(r) for r in kept], next_cursor=next_cursor)
