"""A worker's earnings over a date range, from the ledger (what was really paid).

Bonuses count in `total`, `by_day[].amount` and `by_project[].amount` (a bonus belongs to the
project of its assignment) and so in `hourly_rate`; they do not count as `assignments` and add
no hours. Days are UTC days of the payment; `from` and `to` are inclusive, and bounded to
[`EARLIEST_DAY`, `LATEST_DAY`] (the route refuses others with 422; checked here again so no
caller can reach the date arithmetic or SQL with a day whose next day does not exist).

`hourly_rate` is null unless at least `MIN_RATE_SECONDS` (shared/money.py, 300 s) of work were
measured: `measured_seconds` says how much was. The same figures per project, per requester and
per ISO week (UTC, of the payment) come from one grouped query (`repository.work_groups`), for
both pay models: a per-answer project's measured work is its paid answers' accept-to-submit
time, an hourly project's the `seconds_worked` of its paid timesheets; a bonus (the pay floor's
top-ups too) adds pay, not time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.payments.earnings import repository
from services.payments.earnings.repository import WorkGroupRow
from services.payments.earnings.schemas import (
    Earnings,
    EarningsDay,
    EarningsProject,
    EarningsRequester,
    EarningsWeek,
)
from services.payments.ledger import service as ledger
from shared.database import Db
from shared.errors import ValidationFailed
from shared.money import MIN_RATE_SECONDS

EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(2999, 12, 31)


def hourly_rate_cents(
    total_cents: int, seconds: Decimal, *, min_seconds: int = MIN_RATE_SECONDS
) -> int | None:
    """total / hours, rounded half up to a whole cent; None under `min_seconds` of measured
    work (a rate over a few seconds means nothing) and always None without hours."""
    if seconds <= 0 or seconds < min_seconds:
        return None
    rate = Decimal(total_cents) * 3600 / seconds
    return int(rate.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def hours(seconds: Decimal) -> float:
    return float((seconds / 3600).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def whole_seconds(seconds: Decimal) -> int:
    return int(seconds.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _measured(amount: int, seconds: Decimal) -> dict[str, object]:
    return {
        "amount": amount,
        "measured_seconds": whole_seconds(seconds),
        "hours_worked": hours(seconds),
        "hourly_rate": hourly_rate_cents(amount, seconds),
    }


def _sum_by(
    groups: Iterable[WorkGroupRow], key: Callable[[WorkGroupRow], Hashable]
) -> dict[Hashable, tuple[WorkGroupRow, int, int, Decimal]]:
    """(a row of the group, amount, assignments, seconds) per key."""
    out: dict[Hashable, list] = defaultdict(lambda: [None, 0, 0, Decimal(0)])
    for g in groups:
        entry = out[key(g)]
        entry[0] = entry[0] or g
        entry[1] += g.amount
        entry[2] += g.assignments
        entry[3] += Decimal(g.seconds)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


def _check_day(name: str, day: date | None) -> None:
    if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
        msg = f"must be between {EARLIEST_DAY} and {LATEST_DAY}"
        raise ValidationFailed(f"{name}: {msg}", errors=[{"loc": ["query", name], "msg": msg}])


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


async def get_earnings(
    db: Db, *, worker_id: str, from_date: date | None, to_date: date | None
) -> Earnings:
    _check_day("from", from_date)
    _check_day("to", to_date)
    if from_date is not None and to_date is not None and from_date > to_date:
        raise ValidationFailed(
            "from: must not be after `to`",
            errors=[{"loc": ["query", "from"], "msg": "must not be after `to`"}],
        )
    window = {
        "account_id": ledger.worker_available(worker_id).id,
        "start": _start_of(from_date),
        "end": _start_of(to_date + timedelta(days=1)) if to_date is not None else None,
    }
    days = await repository.by_day(db, **window)
    groups = await repository.work_groups(db, **window)
    seconds = sum((Decimal(g.seconds) for g in groups), Decimal(0))
    projects = sorted(
        (
            EarningsProject(
                project_id=row.project_id,
                project_title=row.project_title,
                requester_id=row.requester_id,
                pay_model=row.pay_model,
                assignments=assignments,
                **_measured(amount, secs),
            )
            for row, amount, assignments, secs in _sum_by(groups, lambda g: g.project_id).values()
        ),
        key=lambda p: (-p.amount, p.project_id),
    )
    requesters = sorted(
        (
            EarningsRequester(
                requester_id=row.requester_id, assignments=assignments, **_measured(amount, secs)
            )
            for row, amount, assignments, secs in _sum_by(groups, lambda g: g.requester_id).values()
        ),
        key=lambda r: (-r.amount, r.requester_id or ""),
    )
    weeks = sorted(
        (
            EarningsWeek(week_start=row.week_start, **_measured(amount, secs))
            for row, amount, _n, secs in _sum_by(groups, lambda g: g.week_start).values()
        ),
        key=lambda w: w.week_start,
    )
    total = sum(d.amount for d in days)
    bonuses = sum(d.bonuses for d in days)
    return Earnings(
        **{"from": from_date},
        to=to_date,
        total=total,
        rewards=total - bonuses,
        bonuses=bonuses,
        by_day=[EarningsDay(date=d.day, amount=d.amount, assignments=d.assignments) for d in days],
        by_project=projects,
        by_requester=requesters,
        by_week=weeks,
        hours_worked=hours(seconds),
        hourly_rate=hourly_rate_cents(total, seconds),
        measured_seconds=whole_seconds(seconds),
        hourly_rate_min_seconds=MIN_RATE_SECONDS,
    )
