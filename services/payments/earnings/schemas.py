from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from shared.money import MoneyOut


class EarningsDay(BaseModel):
    date: dt.date
    amount: MoneyOut = Field(description="Rewards and bonuses credited that day (UTC).")
    assignments: int = Field(description="Assignments paid that day (bonuses are not counted).")


class EarningsProject(BaseModel):
    project_id: str
    project_title: str | None
    amount: MoneyOut
    assignments: int


class Earnings(BaseModel):
    from_: dt.date | None = Field(alias="from", serialization_alias="from")
    to: dt.date | None
    total: MoneyOut = Field(description="rewards + bonuses")
    rewards: MoneyOut
    bonuses: MoneyOut
    by_day: list[EarningsDay] = Field(description="Oldest day first; days without pay omitted.")
    by_project: list[EarningsProject] = Field(description="Largest amount first.")
    hours_worked: float = Field(
        description="Sum over paid assignments of submitted_at - accepted_at, in hours "
        "(4 decimals)."
    )
    hourly_rate: MoneyOut | None = Field(
        description="total / hours_worked (bonuses included), rounded half up to a cent; null "
        "when less than hourly_rate_min_seconds of work was measured (a rate over a few seconds "
        "means nothing), and so without hours."
    )
    measured_seconds: int = Field(
        description="The measured work behind hours_worked and hourly_rate: the sum over paid "
        "assignments of submitted_at - accepted_at, in whole seconds (rounded half up)."
    )
    hourly_rate_min_seconds: int = Field(
        description="hourly_rate is null unless the unrounded measured work is at least this "
        "many seconds (300)."
    )
