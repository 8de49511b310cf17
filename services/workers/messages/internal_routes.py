"""Messages on behalf of a requester, for the tasks service's MTurk door (NotifyWorkers).

The door authenticates requesters with SigV4 credentials, not API keys, so it cannot call the
public route as the requester; this one takes the requester's account id from the path (the
caller is the internal-token authenticated tasks service) and runs the same service function
with the same rules. The door deduplicates retries itself (its invocation-id replay), so there
is no Idempotency-Key here.
"""

from __future__ import annotations

from fastapi import status

from services.workers.messages import service
from services.workers.messages.schemas import MessageSend, MessageSent
from shared.auth import internal_router
from shared.database import WriteDbDep
from shared.errors import ValidationFailed, error_responses

router = internal_router("/internal/requesters/{requester_id}/worker-messages")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageSent,
    responses=error_responses(ValidationFailed),
)
async def send_worker_message_internal(
    requester_id: str, body: MessageSend, db: WriteDbDep
) -> MessageSent:
    return await service.send(db, requester_id=requester_id, data=body)
