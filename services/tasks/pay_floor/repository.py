"""SQL of the pay floor (hand-tuned `*_SQL`: the settlement sweep claims its projects with
`FOR UPDATE SKIP LOCKED` like every timer; the rest are a few keyed statements per project).

Measured working time of an answer: `submitted_at - accepted_at`, capped at the floor's
`duration_seconds` (the assignment duration when the reserve was made), in seconds as numeric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from shared.database import Db, Writable, WriteDb, as_row, as_rows

_MEASURED = "least(extract(epoch FROM a.submitted_at - a.accepted_at), f.duration_seconds)::numeric"


@dataclass(frozen=True, slots=True)
class FloorRow:
    """A `pay_floors` row claimed by the sweep, with its project's status."""

    project_id: str
    requester_id: str
    min_hourly_rate_cents: int
    reward_cents: int
    duration_seconds: int
    worst_top_up_cents: int
    worst_fee_cents: int
    reserved_cents: int
    paid_cents: int
    released_cents: int
    project_status: str
    now: datetime

    @property
    def worst_slot_cents(self) -> int:
        return self.worst_top_up_cents + self.worst_fee_cents

    @property
    def left_cents(self) -> int:
        """What the reserve still holds for the floor."""
        return self.reserved_cents - self.paid_cents - self.released_cents


INSERT_FLOOR_SQL = """
INSERT INTO pay_floors (
    project_id, requester_id, min_hourly_rate_cents, reward_cents, duration_seconds,
    worst_top_up_cents, worst_fee_cents, reserved_cents, next_settlement_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8,
    date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        + interval '7 days' + make_interval(secs => $9)
)
"""


async def insert_floor(
    db: WriteDb,
    *,
    project_id: str,
    requester_id: str,
    min_hourly_rate_cents: int,
    reward_cents: int,
    duration_seconds: int,
    worst_top_up_cents: int,
    worst_fee_cents: int,
    reserved_cents: int,
    grace_seconds: float,
) -> None:
    await db.execute(
        INSERT_FLOOR_SQL,
        project_id,
        requester_id,
        min_hourly_rate_cents,
        reward_cents,
        duration_seconds,
        worst_top_up_cents,
        worst_fee_cents,
        reserved_cents,
        grace_seconds,
    )


@dataclass(frozen=True, slots=True)
class FloorTerms:
    worst_top_up_cents: int
    worst_fee_cents: int


ADD_RESERVED_SQL = """
UPDATE pay_floors SET reserved_cents = reserved_cents + $2 * (worst_top_up_cents + worst_fee_cents)
WHERE project_id = $1 AND finished_at IS NULL
RETURNING worst_top_up_cents, worst_fee_cents
"""


async def add_reserved_slots(db: WriteDb, *, project_id: str, slots: int) -> FloorTerms | None:
    """Count `slots` more worst cases in the floor's reserve; the floor's terms (None: the
    project has no floor)."""
    return as_row(FloorTerms, await db.fetchrow(ADD_RESERVED_SQL, project_id, slots))


async def settle_soon(db: Writable, *, project_id: str) -> None:
    """The project closed: its final settlement is due as soon as nothing is in flight."""
    await db.execute(
        "UPDATE pay_floors SET next_settlement_at = now() "
        "WHERE project_id = $1 AND finished_at IS NULL",
        project_id,
    )


CLAIM_DUE_SQL = """
SELECT f.project_id, f.requester_id, f.min_hourly_rate_cents, f.reward_cents,
       f.duration_seconds, f.worst_top_up_cents, f.worst_fee_cents, f.reserved_cents,
       f.paid_cents, f.released_cents, p.status AS project_status, now() AS now
FROM pay_floors f JOIN projects p ON p.id = f.project_id
WHERE f.finished_at IS NULL AND f.next_settlement_at <= now()
ORDER BY f.next_settlement_at
LIMIT $1
FOR UPDATE OF f SKIP LOCKED
"""


async def claim_due(db: WriteDb, *, limit: int) -> list[FloorRow]:
    return as_rows(FloorRow, await db.fetch(CLAIM_DUE_SQL, limit))


IN_FLIGHT_SQL = """
SELECT EXISTS (
    SELECT 1 FROM assignments
    WHERE project_id = $1 AND status IN ('accepted', 'submitted')
)
"""


async def has_in_flight(db: Db, project_id: str) -> bool:
    return bool(await db.fetchval(IN_FLIGHT_SQL, project_id))


@dataclass(frozen=True, slots=True)
class UnsettledAnswer:
    id: str
    worker_id: str
    task_id: str
    period_start: date
    seconds: Decimal


# Approved answers no settlement covered yet, with their period (the ISO week, UTC, of their
# approval) and measured time; along ix_assignments_project_id_status_id and the answers' key.
UNSETTLED_SQL = f"""
SELECT a.id, a.worker_id, a.task_id,
       date_trunc('week', a.reviewed_at AT TIME ZONE 'UTC')::date AS period_start,
       {_MEASURED} AS seconds
FROM assignments a JOIN pay_floors f ON f.project_id = a.project_id
WHERE a.project_id = $1 AND a.status = 'approved' AND a.submitted_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pay_floor_answers s WHERE s.assignment_id = a.id)
ORDER BY a.id
"""


async def unsettled_answers(db: Db, project_id: str) -> list[UnsettledAnswer]:
    return as_rows(UnsettledAnswer, await db.fetch(UNSETTLED_SQL, project_id))


# Slots that may still become an approved answer paid from the reservation: open slots of open
# tasks and the assignments in flight.
POTENTIAL_SLOTS_SQL = """
SELECT (SELECT coalesce(sum(open_slots), 0) FROM tasks
        WHERE project_id = $1 AND status = 'open')
     + (SELECT count(*) FROM assignments
        WHERE project_id = $1 AND status IN ('accepted', 'submitted'))
"""


async def potential_slots(db: Db, project_id: str) -> int:
    return int(await db.fetchval(POTENTIAL_SLOTS_SQL, project_id))


INSERT_SETTLEMENT_SQL = """
INSERT INTO pay_floor_settlements (
    id, project_id, period_start, answers, median_seconds, top_up_cents, fee_cents, paid_cents,
    final
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (project_id, period_start) DO NOTHING
RETURNING id
"""


async def insert_settlement(
    db: WriteDb,
    *,
    settlement_id: str,
    project_id: str,
    period_start: date,
    answers: int,
    median_seconds: Decimal,
    top_up_cents: int,
    fee_cents: int,
    paid_cents: int,
    final: bool,
) -> bool:
    """Record a period's settlement; False when the period was settled before (nothing
    written: the caller must not pay)."""
    inserted = await db.fetchval(
        INSERT_SETTLEMENT_SQL,
        settlement_id,
        project_id,
        period_start,
        answers,
        median_seconds,
        top_up_cents,
        fee_cents,
        paid_cents,
        final,
    )
    return inserted is not None


INSERT_ANSWERS_SQL = """
INSERT INTO pay_floor_answers (
    assignment_id, settlement_id, project_id, worker_id, top_up_cents, fee_cents, source
)
SELECT a.id, $2, $3, a.worker_id, $4, $5, a.source
FROM unnest($1::text[], $6::text[], $7::text[]) AS a(id, worker_id, source)
"""


async def insert_answers(
    db: WriteDb,
    *,
    settlement_id: str,
    project_id: str,
    assignment_ids: Sequence[str],
    worker_ids: Sequence[str],
    sources: Sequence[str],
    top_up_cents: int,
    fee_cents: int,
) -> None:
    await db.execute(
        INSERT_ANSWERS_SQL,
        list(assignment_ids),
        settlement_id,
        project_id,
        top_up_cents,
        fee_cents,
        list(worker_ids),
        list(sources),
    )


UPDATE_FLOOR_SQL = """
UPDATE pay_floors
SET paid_cents = paid_cents + $2, released_cents = released_cents + $3,
    next_settlement_at = $4, finished_at = CASE WHEN $5 THEN now() END
WHERE project_id = $1
"""


async def update_floor(
    db: WriteDb,
    *,
    project_id: str,
    paid_cents: int,
    released_cents: int,
    next_settlement_at: datetime,
    finished: bool,
) -> None:
    await db.execute(
        UPDATE_FLOOR_SQL, project_id, paid_cents, released_cents, next_settlement_at, finished
    )


async def add_released_to_settlement(db: WriteDb, *, settlement_id: str, cents: int) -> None:
    await db.execute(
        "UPDATE pay_floor_settlements SET released_cents = released_cents + $2 WHERE id = $1",
        settlement_id,
        cents,
    )


DUE_COUNT_SQL = """
SELECT count(*) FROM pay_floors WHERE finished_at IS NULL AND next_settlement_at <= now()
"""


async def due_count(db: Db) -> int:
    return int(await db.fetchval(DUE_COUNT_SQL))


@dataclass(frozen=True, slots=True)
class FloorStateRow:
    """A `pay_floors` row as its requester sees it."""

    project_id: str
    min_hourly_rate_cents: int
    reward_cents: int
    duration_seconds: int
    worst_top_up_cents: int
    worst_fee_cents: int
    reserved_cents: int
    paid_cents: int
    released_cents: int
    next_settlement_at: datetime
    finished_at: datetime | None


FLOOR_OF_REQUESTER_SQL = """
SELECT f.project_id, f.min_hourly_rate_cents, f.reward_cents, f.duration_seconds,
       f.worst_top_up_cents, f.worst_fee_cents, f.reserved_cents, f.paid_cents,
       f.released_cents, f.next_settlement_at, f.finished_at
FROM pay_floors f JOIN projects p ON p.id = f.project_id
WHERE f.project_id = $1 AND p.requester_id = $2
"""


async def floor_of_requester(db: Db, *, project_id: str, requester_id: str) -> FloorStateRow | None:
    """The project's floor, None when the project is someone else's, missing or has none."""
    return as_row(
        FloorStateRow, await db.fetchrow(FLOOR_OF_REQUESTER_SQL, project_id, requester_id)
    )


@dataclass(frozen=True, slots=True)
class SettlementRow:
    period_start: date
    answers: int
    median_seconds: Decimal
    top_up_cents: int
    fee_cents: int
    paid_cents: int
    released_cents: int
    final: bool
    settled_at: datetime


SETTLEMENTS_SQL = """
SELECT period_start, answers, median_seconds, top_up_cents, fee_cents, paid_cents,
       released_cents, final, settled_at
FROM pay_floor_settlements WHERE project_id = $1 ORDER BY period_start
"""


async def settlements(db: Db, project_id: str) -> list[SettlementRow]:
    return as_rows(SettlementRow, await db.fetch(SETTLEMENTS_SQL, project_id))
