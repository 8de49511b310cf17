"""Appeals' SQL. Lock order, as everywhere in review: the assignment first, then its appeal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, literal, select

from services.tasks.appeals.schemas import ANSWER_WITHIN_DAYS, AppealRead
from shared.database import Db, WriteDb, as_row, as_rows
from shared.models.appeals import Appeal
from shared.pagination import newest_first

_APPEAL_COLUMNS = f"""
    ap.id, ap.assignment_id, ap.project_id, ap.worker_id, ap.status, ap.message, ap.reason,
    ap.created_at, ap.created_at + interval '{ANSWER_WITHIN_DAYS} days' AS answer_by,
    ap.decided_at
"""

_APPEAL_COLS = (
    Appeal.id,
    Appeal.assignment_id,
    Appeal.project_id,
    Appeal.worker_id,
    Appeal.status,
    Appeal.message,
    Appeal.reason,
    Appeal.created_at,
    (Appeal.created_at + literal(timedelta(days=ANSWER_WITHIN_DAYS))).label("answer_by"),
    Appeal.decided_at,
)


@dataclass(frozen=True, slots=True)
class AppealedAssignment:
    """The worker's assignment as an appeal needs it, locked."""

    id: str
    project_id: str
    requester_id: str
    status: str
    reviewed_at: datetime | None
    appealed: bool


_LOCK_WORKER_ASSIGNMENT = """
SELECT a.id, a.project_id, a.requester_id, a.status, a.reviewed_at,
       EXISTS (SELECT 1 FROM appeals ap WHERE ap.assignment_id = a.id) AS appealed
FROM assignments a
WHERE a.id = $1 AND a.worker_id = $2
FOR UPDATE OF a
"""


async def lock_worker_assignment(
    db: WriteDb, *, assignment_id: str, worker_id: str
) -> AppealedAssignment | None:
    """The worker's assignment, locked: an override or a second appeal of it waits for us."""
    return as_row(
        AppealedAssignment, await db.fetchrow(_LOCK_WORKER_ASSIGNMENT, assignment_id, worker_id)
    )


# ON CONFLICT: the unique assignment_id is the last word on "once".
_INSERT = f"""
INSERT INTO appeals AS ap (id, assignment_id, project_id, requester_id, worker_id, message,
                           created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (assignment_id) DO NOTHING
RETURNING {_APPEAL_COLUMNS}
"""


async def insert_appeal(
    db: WriteDb,
    *,
    appeal_id: str,
    target: AppealedAssignment,
    worker_id: str,
    message: str,
    now: datetime,
) -> AppealRead | None:
    """The new appeal; None if the assignment already has one."""
    return as_row(
        AppealRead,
        await db.fetchrow(
            _INSERT,
            appeal_id,
            target.id,
            target.project_id,
            target.requester_id,
            worker_id,
            message,
            now,
        ),
    )


_LOCK_APPEAL = f"""
SELECT {_APPEAL_COLUMNS} FROM appeals ap WHERE ap.assignment_id = $1 AND ap.requester_id = $2
FOR UPDATE
"""


async def lock_appeal(db: WriteDb, *, assignment_id: str, requester_id: str) -> AppealRead | None:
    return as_row(AppealRead, await db.fetchrow(_LOCK_APPEAL, assignment_id, requester_id))


_UPHOLD = f"""
UPDATE appeals ap SET status = 'upheld', reason = $2, decided_at = now()
WHERE ap.assignment_id = $1 AND ap.status = 'open'
RETURNING {_APPEAL_COLUMNS}
"""


async def uphold(db: WriteDb, *, assignment_id: str, reason: str) -> AppealRead | None:
    return as_row(AppealRead, await db.fetchrow(_UPHOLD, assignment_id, reason))


def _visible(stmt: Select, *, requester_id: str | None, worker_id: str | None) -> Select:
    if requester_id is not None:
        stmt = stmt.where(Appeal.requester_id == requester_id)
    if worker_id is not None:
        stmt = stmt.where(Appeal.worker_id == worker_id)
    return stmt


async def get_appeal(
    db: Db,
    *,
    assignment_id: str,
    requester_id: str | None = None,
    worker_id: str | None = None,
) -> AppealRead | None:
    """The assignment's appeal if the requester (or worker) given is its party."""
    stmt = _visible(
        select(*_APPEAL_COLS).where(Appeal.assignment_id == assignment_id),
        requester_id=requester_id,
        worker_id=worker_id,
    )
    return as_row(AppealRead, await db.fetchrow(stmt))


async def list_appeals(
    db: Db,
    *,
    requester_id: str | None = None,
    worker_id: str | None = None,
    project_id: str | None,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> list[AppealRead]:
    """Newest first, along ix_appeals_requester_id_id / _project_id_id / _worker_id_id."""
    stmt = _visible(select(*_APPEAL_COLS), requester_id=requester_id, worker_id=worker_id)
    if project_id is not None:
        stmt = stmt.where(Appeal.project_id == project_id)
    if status is not None:
        stmt = stmt.where(Appeal.status == status)
    stmt = newest_first(stmt, Appeal.id, before_id=before_id, limit=limit)
    return as_rows(AppealRead, await db.fetch(stmt))
