"""The pay floor: a per-answer project's `min_hourly_rate`, reserved at its worst and settled
from the median measured working time.

Why the median: topping each answer up to its own measured time would pay a worker for holding
an assignment open (waiting out the clock earns money). The median of the period's approved
answers is what the work takes; one slow worker cannot move it, and every approved answer of the
period gets the same top-up: `max(0, min_hourly_rate x median - reward)`, rounded half up to a
cent, paid as a bonus (plus the bonus fee, shared/fees.py) from the project's reservation.

Money: publishing (and every upload to a live project) reserves, per slot, the top-up at the
full assignment duration plus its fee (`worst_case`), on top of the slots' reward + fee. Each
settlement pays the period's top-ups out of that reserve and releases what the remaining slots
can no longer need: after a settlement the reserve keeps exactly the worst case of the slots
that may still become approved answers (open slots and assignments in flight); the final
settlement (closed project, nothing in flight) releases the rest. An answer beyond the reserved
slots (an override of a rejected answer) is topped up from the reserve while it lasts, then from
the requester's available balance, as the override itself is paid.

Periods: an answer belongs to the ISO week (UTC) of its approval. A period is settled once
(unique per project and period) by the settlement sweep (services/tasks/timers), `grace` after
the week ended, or at once when the project is closed and nothing is in flight. Approvals stamp
`reviewed_at = now()`, so no answer can join a week that ended more than a transaction ago; the
only answers that can reach a settled period are overrides approved after the final settlement
(the floor is finished then: they are paid their reward, without a top-up).

Exactly once: the sweep claims a floor row `FOR UPDATE SKIP LOCKED`; a period's settlement row
is unique; every answer it covers gets a row keyed by its assignment; each top-up travels
through the outbox under `topup:{assignment_id}`, which payments acts on once. All of it is one
transaction: a crash before the commit settles nothing, after it everything is in the outbox.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.tasks.lifecycle.messages import Message, enqueue_many, release_message, top_up_message
from services.tasks.pay_floor import repository
from services.tasks.pay_floor.repository import FloorRow, UnsettledAnswer
from services.tasks.pay_floor.schemas import PayFloorRead, PayFloorSettlementRead
from shared.database import Db, WriteDb
from shared.errors import NotFound
from shared.fees import bonus_fee_cents
from shared.ids import new_id

WEEK = timedelta(days=7)


def floor_pay_cents(min_hourly_rate_cents: int, seconds: Decimal) -> int:
    """What `seconds` of work earn at the floor rate, rounded half up to a cent."""
    exact = Decimal(min_hourly_rate_cents) * seconds / 3600
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def top_up_cents(*, min_hourly_rate_cents: int, reward_cents: int, seconds: Decimal) -> int:
    """The top-up of one answer when the period's median working time is `seconds`."""
    return max(0, floor_pay_cents(min_hourly_rate_cents, seconds) - reward_cents)


@dataclass(frozen=True, slots=True)
class WorstCase:
    top_up_cents: int
    fee_cents: int

    @property
    def slot_cents(self) -> int:
        return self.top_up_cents + self.fee_cents


def worst_case(
    *, min_hourly_rate_cents: int, reward_cents: int, duration_seconds: int
) -> WorstCase:
    """The largest top-up (and its bonus fee) one answer can get: the median can never exceed
    the assignment duration, since measured time is capped there. The fee is monotone in the
    amount, so no settled top-up's fee exceeds it either."""
    top_up = top_up_cents(
        min_hourly_rate_cents=min_hourly_rate_cents,
        reward_cents=reward_cents,
        seconds=Decimal(duration_seconds),
    )
    return WorstCase(top_up_cents=top_up, fee_cents=bonus_fee_cents(top_up))


async def open_floor(
    db: WriteDb,
    *,
    project_id: str,
    requester_id: str,
    min_hourly_rate_cents: int,
    reward_cents: int,
    duration_seconds: int,
    slots: int,
    grace_seconds: float = 0,
) -> int:
    """Publish's part: the floor's row, first looked at when this ISO week ends (the sweep
    then waits out its grace); returns the cents to reserve for it on top of the slots."""
    worst = worst_case(
        min_hourly_rate_cents=min_hourly_rate_cents,
        reward_cents=reward_cents,
        duration_seconds=duration_seconds,
    )
    reserved = slots * worst.slot_cents
    await repository.insert_floor(
        db,
        project_id=project_id,
        requester_id=requester_id,
        min_hourly_rate_cents=min_hourly_rate_cents,
        reward_cents=reward_cents,
        duration_seconds=duration_seconds,
        worst_top_up_cents=worst.top_up_cents,
        worst_fee_cents=worst.fee_cents,
        reserved_cents=reserved,
        grace_seconds=grace_seconds,
    )
    return reserved


async def reserve_for_new_slots(db: WriteDb, *, project_id: str, slots: int) -> int:
    """An upload to a live project: the worst case of its slots joins the floor's reserve;
    the cents to reserve (0 without a floor)."""
    terms = await repository.add_reserved_slots(db, project_id=project_id, slots=slots)
    if terms is None:
        return 0
    return slots * (terms.worst_top_up_cents + terms.worst_fee_cents)


async def project_closed(db: WriteDb, *, project_id: str) -> None:
    await repository.settle_soon(db, project_id=project_id)


def _week_end(period_start: date, tzinfo: object) -> datetime:
    return datetime.combine(period_start + WEEK, time.min, tzinfo=tzinfo)  # type: ignore[arg-type]


@dataclass
class SettleReport:
    floors: int = 0
    periods: int = 0
    top_ups: int = 0
    paid_cents: int = 0
    released_cents: int = 0


async def settle_due(
    db: WriteDb,
    *,
    limit: int,
    grace_seconds: float,
    recheck_seconds: float,
    report: SettleReport | None = None,
) -> int:
    """One batch of the settlement sweep: the floors due now, each settled as far as it can
    be; returns the floors looked at."""
    floors = await repository.claim_due(db, limit=limit)
    for floor in floors:
        await _settle(
            db,
            floor,
            grace=timedelta(seconds=grace_seconds),
            recheck=timedelta(seconds=recheck_seconds),
            report=report or SettleReport(),
        )
    return len(floors)


async def _settle(
    db: WriteDb, floor: FloorRow, *, grace: timedelta, recheck: timedelta, report: SettleReport
) -> None:
    now = floor.now
    utc = now.tzinfo
    current = _utc_week_start(now)
    final = floor.project_status == "closed" and not await repository.has_in_flight(
        db, floor.project_id
    )
    by_period: dict[date, list[UnsettledAnswer]] = defaultdict(list)
    for answer in await repository.unsettled_answers(db, floor.project_id):
        by_period[answer.period_start].append(answer)
    left = floor.left_cents
    paid_from_reserve = 0
    messages: list[Message] = []
    last_settlement: str | None = None
    for period in sorted(by_period):
        if not final and _week_end(period, utc) + grace > now:
            continue  # the week (or its grace) is not over and the project may still approve
        answers = by_period[period]
        median = Decimal(statistics.median(a.seconds for a in answers))
        top_up = top_up_cents(
            min_hourly_rate_cents=floor.min_hourly_rate_cents,
            reward_cents=floor.reward_cents,
            seconds=median,
        )
        fee = bonus_fee_cents(top_up)
        sources: list[str] = []
        period_paid = 0
        for _ in answers:
            if top_up and left >= top_up + fee:
                sources.append("reserved")
                left -= top_up + fee
                period_paid += top_up + fee
            else:
                sources.append("reserved" if not top_up else "available")
        settlement_id = new_id()
        settled = await repository.insert_settlement(
            db,
            settlement_id=settlement_id,
            project_id=floor.project_id,
            period_start=period,
            answers=len(answers),
            median_seconds=median.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP),
            top_up_cents=top_up,
            fee_cents=fee,
            paid_cents=period_paid,
            final=final,
        )
        if not settled:
            # Settled before: these answers came too late for it (module docstring). Undo what
            # this loop counted for them; nothing is written or paid.
            left += period_paid
            continue
        await repository.insert_answers(
            db,
            settlement_id=settlement_id,
            project_id=floor.project_id,
            assignment_ids=[a.id for a in answers],
            worker_ids=[a.worker_id for a in answers],
            sources=sources,
            top_up_cents=top_up,
            fee_cents=fee,
        )
        if top_up:
            messages += [
                top_up_message(
                    requester_id=floor.requester_id,
                    project_id=floor.project_id,
                    task_id=a.task_id,
                    assignment_id=a.id,
                    worker_id=a.worker_id,
                    amount_cents=top_up,
                    fee_cents=fee,
                    source="reserved" if source == "reserved" else "available",
                )
                for a, source in zip(answers, sources, strict=True)
            ]
            report.top_ups += len(answers)
        paid_from_reserve += period_paid
        report.periods += 1
        last_settlement = settlement_id
    needed = 0 if final else await repository.potential_slots(db, floor.project_id)
    still_unsettled = sum(
        len(v) for p, v in by_period.items() if not final and _week_end(p, utc) + grace > now
    )
    release = max(0, left - (needed + still_unsettled) * floor.worst_slot_cents)
    if release:
        messages.append(
            release_message(
                key=f"release:floor:{floor.project_id}:{floor.released_cents + release}",
                requester_id=floor.requester_id,
                project_id=floor.project_id,
                amount_cents=release,
            )
        )
        if last_settlement is not None:
            await repository.add_released_to_settlement(
                db, settlement_id=last_settlement, cents=release
            )
    await enqueue_many(db, messages)
    if final:
        next_at = now
    elif floor.project_status == "closed":
        next_at = now + recheck  # waiting for the answers in flight
    else:
        # The next week (or skipped period) whose grace runs out.
        waiting = [_week_end(p, utc) for p in by_period if _week_end(p, utc) + grace > now]
        next_at = min([_week_end(current, utc), *waiting]) + grace
    await repository.update_floor(
        db,
        project_id=floor.project_id,
        paid_cents=paid_from_reserve,
        released_cents=release,
        next_settlement_at=next_at,
        finished=final,
    )
    report.floors += 1
    report.paid_cents += paid_from_reserve
    report.released_cents += release


def _utc_week_start(moment: datetime) -> date:
    """The Monday of `moment`'s ISO week in UTC (the database hands timestamps over in UTC)."""
    day = moment.date()
    return day - timedelta(days=day.isoweekday() - 1)


async def due_now(db: WriteDb) -> int:
    return await repository.due_count(db)


class PayFloorNotFound(NotFound):
    code = "not_found"


async def get_pay_floor(db: Db, *, requester_id: str, project_id: str) -> PayFloorRead:
    """The floor of the caller's published project: its terms, its money and its settlements.
    Someone else's project, a missing one and one without a floor (or still a draft) are one
    404."""
    floor = await repository.floor_of_requester(
        db, project_id=project_id, requester_id=requester_id
    )
    if floor is None:
        raise PayFloorNotFound("No published project of yours with a pay floor has this id.")
    rows = await repository.settlements(db, project_id)
    return PayFloorRead(
        project_id=floor.project_id,
        min_hourly_rate=floor.min_hourly_rate_cents,
        reward=floor.reward_cents,
        duration_seconds=floor.duration_seconds,
        worst_case_top_up=floor.worst_top_up_cents,
        worst_case_fee=floor.worst_fee_cents,
        reserved=floor.reserved_cents,
        paid=floor.paid_cents,
        released=floor.released_cents,
        held=floor.reserved_cents - floor.paid_cents - floor.released_cents,
        next_settlement_at=None if floor.finished_at else floor.next_settlement_at,
        finished_at=floor.finished_at,
        settlements=[
            PayFloorSettlementRead(
                period_start=r.period_start,
                answers=r.answers,
                median_seconds=float(r.median_seconds),
                top_up=r.top_up_cents,
                fee=r.fee_cents,
                paid=r.paid_cents,
                released=r.released_cents,
                final=r.final,
                settled_at=r.settled_at,
            )
            for r in rows
        ],
    )
