"""Earnings from the worker's ledger entries (payouts and bonuses), joined to the shared
schema's `ledger_transactions` -> `assignments` / `projects` for hours and titles.

Core: the entries' time window is option-built (`start`/`end` bound it, [start, end) in UTC;
None leaves that side open, and then no condition is written for it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import BigInteger, Date, cast, extract, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from shared.database import Db, as_rows
from shared.models.assignments import Assignment
from shared.models.payments import LedgerEntry, LedgerTransaction
from shared.models.projects import Project


@dataclass(frozen=True, slots=True)
class DayRow:
    day: dt.date
    amount: int
    assignments: int
    bonuses: int


@dataclass(frozen=True, slots=True)
class ProjectRow:
    project_id: str | None
    project_title: str | None
    amount: int
    assignments: int


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


async def by_day(
    db: Db, *, account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[DayRow]:
    day = cast(func.timezone(literal_column("'UTC'"), LedgerEntry.created_at), Date).label("day")
    stmt = (
        select(
            day,
            cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount"),
            func.count().filter(_PAYOUTS).label("assignments"),
            cast(
                func.coalesce(
                    func.sum(LedgerEntry.amount_cents).filter(LedgerEntry.kind == "bonus"), 0
                ),
                BigInteger,
            ).label("bonuses"),
        )
        .where(*_window(account_id, start, end))
        .group_by(day)
        .order_by(day)
    )
    return as_rows(DayRow, await db.fetch(stmt))


async def by_project(
    db: Db, *, account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> list[ProjectRow]:
    amount = cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount")
    stmt = (
        select(
            LedgerTransaction.project_id,
            Project.title.label("project_title"),
            amount,
            func.count().filter(_PAYOUTS).label("assignments"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .outerjoin(Project, Project.id == LedgerTransaction.project_id)
        .where(*_window(account_id, start, end))
        .group_by(LedgerTransaction.project_id, Project.title)
        .order_by(amount.desc(), LedgerTransaction.project_id)
    )
    return as_rows(ProjectRow, await db.fetch(stmt))


async def seconds_worked(
    db: Db, *, account_id: str, start: dt.datetime | None, end: dt.datetime | None
) -> Decimal:
    stmt = (
        select(
            func.coalesce(
                func.sum(extract("epoch", Assignment.submitted_at - Assignment.accepted_at)), 0
            )
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(Assignment, Assignment.id == LedgerTransaction.assignment_id)
        .where(*_window(account_id, start, end), _PAYOUTS, Assignment.submitted_at.is_not(None))
    )
    return Decimal(await db.fetchval(stmt))
