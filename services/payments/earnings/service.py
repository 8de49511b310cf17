"""A worker's earnings over a date range, from the ledger (what was really paid).

Bonuses count in `total`, `by_day[].amount` and `by_project[].amount` (a bonus belongs to the
project of its assignment) and so in `hourly_rate`; they do not count as `assignments` and add
no hours. Days are UTC days of the payment; `from` and `to` are inclusive.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.earnings import repository
from services.payments.earnings.schemas import Earnings, EarningsDay, EarningsProject
from services.payments.ledger import service as ledger
from shared.db import driver_connection
from shared.errors import ValidationFailed


def hourly_rate_cents(total_cents: int, seconds: Decimal) -> int | None:
    """total / hours, rounded half up to a whole cent; None without hours."""
    if seconds <= 0:
        return None
    rate = Decimal(total_cents) * 3600 / seconds
    return int(rate.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def hours(seconds: Decimal) -> float:
    return float((seconds / 3600).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


async def get_earnings(
    session: AsyncSession, *, worker_id: str, from_date: date | None, to_date: date | None
) -> Earnings:
    if from_date is not None and to_date is not None and from_date > to_date:
        raise ValidationFailed(
            "from: must not be after `to`",
            errors=[{"loc": ["query", "from"], "msg": "must not be after `to`"}],
        )
    conn = await driver_connection(session)
    window = {
        "account_id": ledger.worker_available(worker_id).id,
        "start": _start_of(from_date),
        "end": _start_of(to_date + timedelta(days=1)) if to_date is not None else None,
    }
    days = await repository.by_day(conn, **window)
    projects = await repository.by_project(conn, **window)
    seconds = await repository.seconds_worked(conn, **window)
    total = sum(d["amount"] for d in days)
    bonuses = sum(d["bonuses"] for d in days)
    return Earnings(
        **{"from": from_date},
        to=to_date,
        total=total,
        rewards=total - bonuses,
        bonuses=bonuses,
        by_day=[
            EarningsDay(date=d["day"], amount=d["amount"], assignments=d["assignments"])
            for d in days
        ],
        by_project=[
            EarningsProject(
                project_id=p["project_id"],
                project_title=p["project_title"],
                amount=p["amount"],
                assignments=p["assignments"],
            )
            for p in projects
        ],
        hours_worked=hours(seconds),
        hourly_rate=hourly_rate_cents(total, seconds),
    )
