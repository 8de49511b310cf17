"""Worker messages: what a requester sends (NotifyWorkers' limits) and what a worker reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypeAliasType

from shared.ids import ID_PATTERN
from shared.models.messages import MAX_BODY_CHARS, MAX_SUBJECT_CHARS

MAX_RECIPIENTS = 100

WorkerId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN.pattern)]

MessageFailureReason = TypeAliasType(
    "MessageFailureReason", Literal["unknown_worker", "no_work_for_requester"]
)


class MessageSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_ids: list[WorkerId] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="1-100 workers; each must have had work approved or rejected by you.",
    )
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT_CHARS)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)

    @field_validator("subject", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class MessageFailure(BaseModel):
    worker_id: str
    reason: MessageFailureReason
    message: str


class MessageSent(BaseModel):
    send_id: str = Field(description="Shared by every recipient's copy of this message.")
    sent: list[str] = Field(description="The workers who received it, in the order given.")
    failures: list[MessageFailure] = Field(
        description="The workers who did not, with why (the message reached the others)."
    )


class WorkerMessageRead(BaseModel):
    id: str
    requester_id: str
    requester_name: str
    subject: str
    body: str
    created_at: datetime
    read_at: datetime | None
