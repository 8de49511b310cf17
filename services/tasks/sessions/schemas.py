"""Work sessions and timesheets as the API shows them (contract: "Hourly work")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypeAliasType

from shared.money import MoneyOut

WorkSessionStatus = TypeAliasType("WorkSessionStatus", Literal["open", "ended"])
SessionEndReason = TypeAliasType(
    "SessionEndReason",
    Literal[
        "worker",
        "idle",
        "week_ended",
        "weekly_hours_exhausted",
        "budget_exhausted",
        "project_closed",
        "project_paused",
    ],
)
DisputeStatus = TypeAliasType("DisputeStatus", Literal["open", "withdrawn", "upheld"])
TimesheetStatus = TypeAliasType("TimesheetStatus", Literal["open", "approved"])
TimesheetApprover = TypeAliasType("TimesheetApprover", Literal["requester", "auto"])

DisputeText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]


class SessionDispute(BaseModel):
    status: DisputeStatus = Field(
        description="`open`: the session's time is not paid unless the requester withdraws "
        "the dispute before the timesheet is approved; `withdrawn`: paid; `upheld`: the "
        "timesheet was approved with the dispute standing (not paid, final)."
    )
    reason: str
    disputed_at: datetime
    response: str | None = Field(description="The worker's answer, if any.")
    responded_at: datetime | None
    resolved_at: datetime | None


class WorkSessionRead(BaseModel):
    id: str
    project_id: str
    worker_id: str
    timesheet_id: str
    week_start: date = Field(description="The ISO week (UTC) the session belongs to: its Monday.")
    status: WorkSessionStatus
    started_at: datetime
    last_activity_at: datetime
    expires_at: datetime = Field(
        description="While open: when the session counts as idle and ends unless an activity "
        "event (heartbeat, accept, submit) comes first (the last event + the project's idle "
        "timeout, at the latest the week's end)."
    )
    ended_at: datetime | None
    ended_reason: SessionEndReason | None
    seconds_worked: int = Field(description="Measured by the server; the time this session paid.")
    activity_events: int
    dispute: SessionDispute | None
    hourly_rate: MoneyOut = Field(
        description="What this session's time is paid per hour: the project's rate for the "
        "worker's level when the session opened (pay tiers), fixed for the session."
    )


class TimesheetRead(BaseModel):
    id: str
    project_id: str
    worker_id: str
    requester_id: str
    week_start: date
    week_end: datetime = Field(description="The week's end: the next Monday 00:00 UTC.")
    status: TimesheetStatus
    seconds_worked: int = Field(description="Every session's measured time this week.")
    hours_worked: float = Field(description="seconds_worked / 3600, rounded to 4 decimals.")
    sessions: int
    answers_submitted: int = Field(description="Answers the worker submitted this week.")
    answers_approved: int = Field(description="Of those, approved so far.")
    disputed_seconds: int = Field(description="Time of sessions whose dispute is open or upheld.")
    hourly_rate: MoneyOut
    amount_due: MoneyOut = Field(
        description="What approving now would pay the worker: undisputed seconds x rate "
        "(rounded down to the cent). After approval, what was paid."
    )
    auto_approve_at: datetime = Field(
        description="When an unreviewed timesheet is approved by the platform: the week's end + "
        "the project's auto_approve_seconds."
    )
    disputed_at: datetime | None
    approved_at: datetime | None
    approved_by: TimesheetApprover | None
    paid_seconds: int | None
    paid: MoneyOut = Field(description="The worker's pay (the payout; 0.00 until approved).")
    fee: MoneyOut = Field(description="The platform fee on that payout.")


class TimesheetDetail(TimesheetRead):
    work_sessions: list[WorkSessionRead] = Field(description="Oldest first.")


class DisputeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: DisputeText


class DisputeResponseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response: DisputeText
