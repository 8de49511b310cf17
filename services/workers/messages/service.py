"""Worker messages: a requester writes to workers it has worked with; workers read them.

MTurk's NotifyWorkers e-mails a worker only if the requester has approved or rejected work of
theirs; here the message is stored for the worker to read (`GET /v1/workers/me/messages`),
under the same rule. A send names 1-100 workers: each one the rule admits gets its own copy (one
row, all sharing a `send_id`), each other one is reported in `failures` with why, and the send
as a whole succeeds (as MTurk answers with NotifyWorkersFailureStatuses). Duplicates in the list
count once. The rows of a send commit together; an Idempotency-Key replays the first answer.
"""

from __future__ import annotations

from services.workers.messages import repository
from services.workers.messages.repository import MessageRow
from services.workers.messages.schemas import (
    MessageFailure,
    MessageSend,
    MessageSent,
    WorkerMessageRead,
)
from shared.database import Db, WriteDb
from shared.errors import NotFound
from shared.ids import new_id
from shared.pagination import Page, PageParams


class MessageNotFound(NotFound):
    code = "not_found"


UNKNOWN_WORKER = "There is no worker with this id."
NO_WORK = (
    "This worker has no work approved or rejected by you; you can message only workers you "
    "have worked with."
)


async def send(db: WriteDb, *, requester_id: str, data: MessageSend) -> MessageSent:
    worker_ids = list(dict.fromkeys(data.worker_ids))
    found = {
        r.worker_id: r
        for r in await repository.recipients(db, requester_id=requester_id, worker_ids=worker_ids)
    }
    sent: list[str] = []
    failures: list[MessageFailure] = []
    for worker_id in worker_ids:
        recipient = found.get(worker_id)
        if recipient is None:
            failures.append(
                MessageFailure(worker_id=worker_id, reason="unknown_worker", message=UNKNOWN_WORKER)
            )
        elif not recipient.worked:
            failures.append(
                MessageFailure(worker_id=worker_id, reason="no_work_for_requester", message=NO_WORK)
            )
        else:
            sent.append(worker_id)
    send_id = new_id()
    await repository.insert_messages(
        db,
        ids=[new_id() for _ in sent],
        send_id=send_id,
        requester_id=requester_id,
        worker_ids=sent,
        subject=data.subject,
        body=data.body,
    )
    return MessageSent(send_id=send_id, sent=sent, failures=failures)


def _read(row: MessageRow) -> WorkerMessageRead:
    return WorkerMessageRead(
        id=row.id,
        requester_id=row.requester_id,
        requester_name=row.requester_name,
        subject=row.subject,
        body=row.body,
        created_at=row.created_at,
        read_at=row.read_at,
    )


async def list_messages(
    db: Db, *, worker_id: str, unread_only: bool, page: PageParams
) -> Page[WorkerMessageRead]:
    rows = await repository.list_messages(
        db, worker_id=worker_id, unread_only=unread_only, before_id=page.before, limit=page.fetch
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[_read(r) for r in items], next_cursor=next_cursor)


async def mark_read(db: WriteDb, *, worker_id: str, message_id: str) -> WorkerMessageRead:
    await repository.mark_read(db, worker_id=worker_id, message_id=message_id)
    row = await repository.get_message(db, worker_id=worker_id, message_id=message_id)
    if row is None:
        raise MessageNotFound("Message not found.")
    return _read(row)
