"""SQL for worker messages: who may be written to, the inserts, a worker's inbox (Core for the
CRUD; one hand-written statement for the recipients check, which reads the tasks service's
tallies as shared/eligibility.py reads grants: a shared-schema read, no HTTP hop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from shared.database import Db, Writable, as_row, as_rows
from shared.models import Account
from shared.models.messages import WorkerMessage
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class Recipient:
    worker_id: str
    worked: bool


# Which of the ids are workers, and whether the requester approved or rejected an answer of
# each (MTurk's rule for NotifyWorkers). `gold_stats` keeps per (project, worker) the
# approved and rejected counts every decision path updates (approve, reject, override, bulk
# review, auto-approve); the probe walks the requester's projects
# (ix_projects_requester_id_id) into its primary key (project_id, worker_id), so its cost is
# bounded by the requester's project count, never by a busy worker's assignment history.
RECIPIENTS_SQL = """
SELECT a.id AS worker_id,
       EXISTS (
           SELECT 1 FROM projects p
           JOIN gold_stats g ON g.project_id = p.id AND g.worker_id = a.id
           WHERE p.requester_id = $1 AND g.approved + g.rejected > 0
       ) AS worked
FROM accounts a
WHERE a.id = ANY($2::text[]) AND a.kind = 'worker'
"""


async def recipients(db: Db, *, requester_id: str, worker_ids: Sequence[str]) -> list[Recipient]:
    return as_rows(Recipient, await db.fetch(RECIPIENTS_SQL, requester_id, list(worker_ids)))


async def insert_messages(
    db: Writable,
    *,
    ids: Sequence[str],
    send_id: str,
    requester_id: str,
    worker_ids: Sequence[str],
    subject: str,
    body: str,
) -> None:
    if not worker_ids:
        return
    await db.execute(
        insert(WorkerMessage).values(
            [
                {
                    "id": message_id,
                    "worker_id": worker_id,
                    "requester_id": requester_id,
                    "send_id": send_id,
                    "subject": subject,
                    "body": body,
                }
                for message_id, worker_id in zip(ids, worker_ids, strict=True)
            ]
        )
    )


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    requester_id: str
    requester_name: str
    subject: str
    body: str
    created_at: datetime
    read_at: datetime | None


_COLS = (
    WorkerMessage.id,
    WorkerMessage.requester_id,
    Account.name.label("requester_name"),
    WorkerMessage.subject,
    WorkerMessage.body,
    WorkerMessage.created_at,
    WorkerMessage.read_at,
)


async def list_messages(
    db: Db, *, worker_id: str, unread_only: bool, before_id: str | None, limit: int
) -> list[MessageRow]:
    stmt = (
        select(*_COLS)
        .join(Account, Account.id == WorkerMessage.requester_id)
        .where(WorkerMessage.worker_id == worker_id)
    )
    if unread_only:
        stmt = stmt.where(WorkerMessage.read_at.is_(None))
    stmt = newest_first(stmt, WorkerMessage.id, before_id=before_id, limit=limit)
    return as_rows(MessageRow, await db.fetch(stmt))


async def get_message(db: Db, *, worker_id: str, message_id: str) -> MessageRow | None:
    stmt = (
        select(*_COLS)
        .join(Account, Account.id == WorkerMessage.requester_id)
        .where(WorkerMessage.id == message_id, WorkerMessage.worker_id == worker_id)
    )
    return as_row(MessageRow, await db.fetchrow(stmt))


async def mark_read(db: Writable, *, worker_id: str, message_id: str) -> None:
    """The first read time stays (reading again changes nothing)."""
    await db.execute(
        update(WorkerMessage)
        .where(
            WorkerMessage.id == message_id,
            WorkerMessage.worker_id == worker_id,
            WorkerMessage.read_at.is_(None),
        )
        .values(read_at=func.now())
    )
