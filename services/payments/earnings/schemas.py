from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from shared.money import MoneyOut


class EarningsDay(BaseModel):
    date: dt.date
    amount: MoneyOut = Field(description="Rewards and bonuses credited that day (UTC).")
    assignments: int = Field(
        description="Answers paid that day (bonuses and timesheet payouts are not counted)."
    )


# Named: one `PayModel` component, the same schema as the tasks document's (docs/api.md).
PayModel = TypeAliasType("PayModel", Literal["per_assignment", "hourly"])


class MeasuredWork(BaseModel):
    """Hours and the real hourly rate of a part of the earnings (a project, a requester, a
    week): the same rules as the totals' `hours_worked`, `hourly_rate` and `measured_seconds`."""

    amount: MoneyOut = Field(description="Rewards, timesheet pay and bonuses credited.")
    measured_seconds: int = Field(
        description="Measured work behind the pay, whole seconds: accept to submit of paid "
        "answers (per-answer projects), seconds_worked of paid timesheets (hourly projects)."
    )
    hours_worked: float = Field(description="measured_seconds in hours (4 decimals).")
    hourly_rate: MoneyOut | None = Field(
        description="amount / hours_worked, rounded half up to a cent; null under "
        "hourly_rate_min_seconds (300) of measured work."
    )


class EarningsProject(MeasuredWork):
    project_id: str
    project_title: str | None
    requester_id: str | None = Field(description="Who posted (and paid for) the project.")
    pay_model: PayModel | None
    assignments: int


class EarningsRequester(MeasuredWork):
    requester_id: str | None
    assignments: int


class EarningsWeek(MeasuredWork):
    week_start: dt.date = Field(description="Monday of the ISO week (UTC) of the payments.")


class Earnings(BaseModel):
    from_: dt.date | None = Field(alias="from", serialization_alias="from")
    to: dt.date | None
    total: MoneyOut = Field(description="rewards + bonuses")
    rewards: MoneyOut
    bonuses: MoneyOut
    by_day: list[EarningsDay] = Field(description="Oldest day first; days without pay omitted.")
    by_project: list[EarningsProject] = Field(description="Largest amount first.")
    by_requester: list[EarningsRequester] = Field(
        default_factory=list, description="Largest amount first."
    )
    by_week: list[EarningsWeek] = Field(
        default_factory=list, description="Oldest ISO week (UTC) first; weeks without pay omitted."
    )
    hours_worked: float = Field(
        description="Measured work in hours (4 decimals): over paid assignments, submitted_at - "
        "accepted_at; over paid timesheets of hourly projects, their seconds_worked."
    )
    hourly_rate: MoneyOut | None = Field(
        description="total / hours_worked (bonuses included), rounded half up to a cent; null "
        "when less than hourly_rate_min_seconds of work was measured (a rate over a few seconds "
        "means nothing), and so without hours."
    )
    measured_seconds: int = Field(
        description="The measured work behind hours_worked and hourly_rate, in whole seconds "
        "(rounded half up): submitted_at - accepted_at of paid assignments plus seconds_worked "
        "of paid timesheets."
    )
    hourly_rate_min_seconds: int = Field(
        description="hourly_rate is null unless the unrounded measured work is at least this "
        "many seconds (300)."
    )
