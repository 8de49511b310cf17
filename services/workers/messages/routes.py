"""Worker messages: a requester sends (`POST /v1/workers/messages`), the worker reads its own
(`GET /v1/workers/me/messages`, `POST /v1/workers/me/messages/{id}/read`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from services.workers.messages import service
from services.workers.messages.schemas import MessageSend, MessageSent, WorkerMessageRead
from shared.auth import RequesterDep, WorkerDep
from shared.database import ReadDbDep, WriteDbDep
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    error_responses,
)
from shared.idempotency import IdempotencyDep
from shared.pagination import Page, PageDep

router = APIRouter(tags=["messages"])


@router.post(
    "/v1/workers/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageSent,
    responses=error_responses(Unauthorized, Forbidden, Conflict, ValidationFailed),
    summary="Message 1-100 workers you have worked with; the others are reported in failures",
)
async def send_worker_message(
    body: MessageSend, caller: RequesterDep, idem: IdempotencyDep
) -> Response:
    return await idem.run(
        caller, lambda db: service.send(db, requester_id=caller.account_id, data=body)
    )


@router.get(
    "/v1/workers/me/messages",
    response_model=Page[WorkerMessageRead],
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Your messages from requesters, newest first",
)
async def list_my_messages(
    caller: WorkerDep,
    db: ReadDbDep,
    page: PageDep,
    unread: Annotated[bool, Query(description="Only the messages not yet marked read.")] = False,
) -> Page[WorkerMessageRead]:
    return await service.list_messages(
        db, worker_id=caller.account_id, unread_only=unread, page=page
    )


@router.post(
    "/v1/workers/me/messages/{message_id}/read",
    response_model=WorkerMessageRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="Mark one of your messages read (the first time stays)",
)
async def mark_my_message_read(
    message_id: str, caller: WorkerDep, db: WriteDbDep
) -> WorkerMessageRead:
    return await service.mark_read(db, worker_id=caller.account_id, message_id=message_id)
