"""Bodies of the internal money calls of the tasks service (amounts in integer cents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.money import MAX_CENTS

EventKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        description="Derived from the business event (e.g. `pay:<assignment_id>`); acts once.",
    ),
]
ObjectId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# strict: a JSON number that is an integer, never a float or a numeric string.
PositiveCents = Annotated[int, Field(strict=True, ge=1, le=MAX_CENTS)]
Cents = Annotated[int, Field(strict=True, ge=0, le=MAX_CENTS)]
PayoutSource = Literal["reserved", "available"]


class ReservationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: EventKey
    requester_id: ObjectId
    project_id: ObjectId
    amount_cents: PositiveCents


class PayoutCreate(BaseModel):
    """Pay for one approved assignment (`task_id` + `assignment_id`) or for one approved
    timesheet of an hourly project (`timesheet_id`, `pay:timesheet:<id>`): exactly one of
    the two, the same rules otherwise."""

    model_config = ConfigDict(extra="forbid")

    key: EventKey
    requester_id: ObjectId
    project_id: ObjectId
    task_id: ObjectId | None = None
    assignment_id: ObjectId | None = None
    timesheet_id: ObjectId | None = None
    worker_id: ObjectId
    reward_cents: Cents
    fee_cents: Cents
    source: PayoutSource = Field(
        description="`reserved`: out of the project's hold; `available`: an override of a "
        "rejected assignment, out of the requester's available balance."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> PayoutCreate:
        for_assignment = self.task_id is not None and self.assignment_id is not None
        if self.timesheet_id is None:
            if not for_assignment:
                raise ValueError("a payout needs task_id and assignment_id, or timesheet_id")
        elif self.task_id is not None or self.assignment_id is not None:
            raise ValueError("a timesheet payout has no task_id or assignment_id")
        elif self.source != "reserved":
            raise ValueError("a timesheet is paid from the project's reservation")
        return self


class TopUpCreate(BaseModel):
    """A pay floor top-up of one approved answer (the tasks service's settlement)."""

    model_config = ConfigDict(extra="forbid")

    key: EventKey
    requester_id: ObjectId
    project_id: ObjectId
    task_id: ObjectId
    assignment_id: ObjectId
    worker_id: ObjectId
    amount_cents: PositiveCents
    fee_cents: Cents
    source: PayoutSource = Field(
        description="`reserved`: out of the project's hold (the floor's reserve); `available`: "
        "out of the requester's available balance (an answer beyond the reserved slots)."
    )


class ReleaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: EventKey
    requester_id: ObjectId
    project_id: ObjectId
    amount_cents: PositiveCents


class LedgerTransactionRead(BaseModel):
    """The first result of a key; a replay answers the same body with 200."""

    transaction_id: str
    key: str | None
    kind: str
    requester_id: str | None
    worker_id: str | None
    project_id: str | None
    task_id: str | None
    assignment_id: str | None
    amount_cents: int = Field(description="Reserved/released amount, or the payout's reward.")
    fee_cents: int
    source: PayoutSource | None = None
    created_at: datetime
