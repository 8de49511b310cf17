"""Earnings from the worker's ledger entries (payouts and bonuses), joined to the shared
schema's `ledger_transactions` -> `assignments` / `timesheets` / `projects` for hours and titles
(payments reads those tasks tables, never writes them).

Measured work, per paid unit: an assignment payout counts the answer's `submitted_at -
accepted_at`; a timesheet payout (an hourly project's week, `details.timesheet_id`) counts the
timesheet's `seconds_worked`; a bonus (pay floor top-ups included) counts no time.

Core: the entries' time window is option-built (`start`/`end` bound it, [start, end) in UTC;
None leaves that side open, and then no condition is written for it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import BigInteger, Date, case, cast, extract, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from shared.database import Db, as_rows
from shared.models.assignments import Assignment
from shared.models.hourly import Timesheet
from shared.models.payments import LedgerEntry, LedgerTransaction
from shared.models.projects import Project


@dataclass(frozen=True, slots=True)
class DayRow:
    day: dt.date
    amount: int
    assignments: int
    bonuses: int


def _window(
    account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[ColumnElement[bool]]:
    conditions = [
        LedgerEntry.account_id == account_id,
        LedgerEntry.kind.in_(("payout", "bonus")),
    ]
    if start is not None:
        conditions.append(LedgerEntry.created_at >= start)
    if end is not None:
        conditions.append(LedgerEntry.created_at < end)
    return conditions


_PAYOUTS = LedgerEntry.kind == "payout"
# A payout for an answer (a timesheet's payout pays a week of hourly work, not an answer).
_ANSWER_PAYOUTS = _PAYOUTS & LedgerTransaction.assignment_id.is_not(None)


async def by_day(
    db: Db, *, account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[DayRow]:
    day = cast(func.timezone(literal_column("'UTC'"), LedgerEntry.created_at), Date).label("day")
    stmt = (
        select(
            day,
            cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount"),
            func.count().filter(_ANSWER_PAYOUTS).label("assignments"),
            cast(
                func.coalesce(
                    func.sum(LedgerEntry.amount_cents).filter(LedgerEntry.kind == "bonus"), 0
                ),
                BigInteger,
            ).label("bonuses"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(*_window(account_id, start, end))
        .group_by(day)
        .order_by(day)
    )
    return as_rows(DayRow, await db.fetch(stmt))


@dataclass(frozen=True, slots=True)
class WorkGroupRow:
    """Pay and measured work of one project in one ISO week (UTC, of the payment)."""

    project_id: str | None
    project_title: str | None
    requester_id: str | None
    pay_model: str | None
    week_start: dt.date
    amount: int
    assignments: int
    seconds: Decimal


async def work_groups(
    db: Db, *, account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[WorkGroupRow]:
    """The window's pay and measured work per project and week: what the per-project,
    per-requester and per-week figures (and the totals' hours) are summed from."""
    timesheet_id = LedgerTransaction.details["timesheet_id"].astext
    seconds = case(
        (
            _ANSWER_PAYOUTS,
            extract("epoch", Assignment.submitted_at - Assignment.accepted_at),
        ),
        (_PAYOUTS & Timesheet.id.is_not(None), Timesheet.seconds_worked),
        else_=0,
    )
    week = cast(
        func.date_trunc("week", func.timezone(literal_column("'UTC'"), LedgerEntry.created_at)),
        Date,
    ).label("week_start")
    stmt = (
        select(
            LedgerTransaction.project_id,
            Project.title.label("project_title"),
            LedgerTransaction.requester_id,
            Project.pay_model,
            week,
            cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount"),
            func.count().filter(_ANSWER_PAYOUTS).label("assignments"),
            func.coalesce(func.sum(seconds), 0).label("seconds"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .outerjoin(Assignment, Assignment.id == LedgerTransaction.assignment_id)
        .outerjoin(Timesheet, Timesheet.id == timesheet_id)
        .outerjoin(Project, Project.id == LedgerTransaction.project_id)
        .where(*_window(account_id, start, end))
        .group_by(
            LedgerTransaction.project_id,
            Project.title,
            LedgerTransaction.requester_id,
            Project.pay_model,
            week,
        )
    )
    return as_rows(WorkGroupRow, await db.fetch(stmt))
