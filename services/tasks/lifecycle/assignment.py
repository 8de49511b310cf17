"""What every transition shares: the assignment's public columns and row, its API shape, the
errors a holder or a reviewer meets, and how a transition gets a transaction when it needs one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from services.tasks.assignments.schemas import AssignmentRead
from shared.database import Db
from shared.errors import Conflict, InvalidState, NotFound

R = TypeVar("R")


class HotRows(Generic[R]):
    """Records of the hot paths' hand-tuned statements as the frozen dataclass `cls`, built
    positionally: `as_row`'s keywords cost ~19 µs on accept's 31-column record (an asyncpg
    record unpacked as a mapping), positionally ~3-6 µs. So the statement's columns must be
    `cls`'s fields, in order: checked on the first record of each statement a process runs, and
    a mismatch is a TypeError, never a silently shifted field."""

    __slots__ = ("_checked", "_cls", "_names")

    def __init__(self, cls: type[R]) -> None:
        self._cls = cls
        self._names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        self._checked: set[str] = set()

    async def fetchrow(self, db: Db, sql: str, *args: Any) -> R | None:
        record = await db.fetchrow(sql, *args)
        if record is None:
            return None
        if sql not in self._checked:
            self._check(record, sql)
        return self._cls(*record)

    async def fetch(self, db: Db, sql: str, *args: Any) -> list[R]:
        records = await db.fetch(sql, *args)
        if records and sql not in self._checked:
            self._check(records[0], sql)
        cls = self._cls
        return [cls(*record) for record in records]

    def _check(self, record: Any, sql: str) -> None:
        columns = tuple(record.keys())
        if columns != self._names:
            raise TypeError(
                f"{self._cls.__name__} has fields {self._names}, the statement {columns}"
            )
        self._checked.add(sql)


# The public shape of an assignment, for RETURNING and SELECT alike (table alias `a`).
ASSIGNMENT_COLUMNS = """
    a.id, a.task_id, a.project_id, a.worker_id, a.status, a.answer, a.feedback,
    a.reward_cents, a.accepted_at, a.deadline, a.submitted_at, a.reviewed_at, a.auto_approve_at
"""


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """An assignment selected with ASSIGNMENT_COLUMNS."""

    id: str
    task_id: str
    project_id: str
    worker_id: str
    status: str
    answer: Any
    feedback: str | None
    reward_cents: int
    accepted_at: datetime
    deadline: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    auto_approve_at: datetime | None


ASSIGNMENT_ROWS = HotRows(AssignmentRow)


def assignment_fields(row: AssignmentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "task_id": row.task_id,
        "project_id": row.project_id,
        "worker_id": row.worker_id,
        "status": row.status,
        "answer": row.answer,
        "feedback": row.feedback,
        "reward": row.reward_cents,
        "accepted_at": row.accepted_at,
        "deadline": row.deadline,
        "submitted_at": row.submitted_at,
        "reviewed_at": row.reviewed_at,
        "auto_approve_at": row.auto_approve_at,
    }


def assignment_read(row: AssignmentRow) -> AssignmentRead:
    """An assignment row (ASSIGNMENT_COLUMNS, or a row type with those fields) as the API
    shows it."""
    return AssignmentRead(**assignment_fields(row))


class AssignmentNotFound(NotFound):
    code = "not_found"


class AssignmentExpired(Conflict):
    code = "assignment_expired"


# --------------------------------------------------------------------------- the holder's view


@dataclass(frozen=True, slots=True)
class HolderStatus:
    status: str
    overdue: bool


_HOLDER_STATUS = HotRows(HolderStatus)
STATUS_FOR_WORKER_SQL = (
    "SELECT status, deadline <= now() AS overdue FROM assignments WHERE id = $1 AND worker_id = $2"
)


async def get_status_for_worker(
    db: Db, *, assignment_id: str, worker_id: str
) -> HolderStatus | None:
    """Why submit or return found nothing to change: the worker's assignment's status and
    whether its deadline has passed."""
    return await _HOLDER_STATUS.fetchrow(db, STATUS_FOR_WORKER_SQL, assignment_id, worker_id)


def refuse_unless_open(status: str, *, overdue: bool) -> None:
    """Submit's refusals, from the assignment's state."""
    if status == "expired" or (status == "accepted" and overdue):
        raise AssignmentExpired(
            "The deadline of this assignment has passed; its answer can no longer be taken."
        )
    if status != "accepted":
        raise InvalidState(f"Only an accepted assignment can be submitted; this one is {status}.")
