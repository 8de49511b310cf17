"""SQL of per-project holds: the money reserved for a project's slots that are not yet paid or
released. A requester's `reserved` ledger balance always equals the sum of its holds.

The statements that move a hold are part of the money movements (hand-tuned `*_SQL`: upserts,
conditional updates, and the payout batch's set-based lock and draw, one statement for any
number of holds); the reads are Core.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, func, select

from shared.database import Db, WriteDb
from shared.models.payments import ProjectHold

ADD_TO_HOLD_SQL = """
        INSERT INTO project_holds AS h (requester_id, project_id, held_cents, reserved_total_cents)
        VALUES ($1, $2, $3, $3)
        ON CONFLICT (requester_id, project_id) DO UPDATE
            SET held_cents = h.held_cents + EXCLUDED.held_cents,
                reserved_total_cents = h.reserved_total_cents + EXCLUDED.reserved_total_cents,
                updated_at = now()
        RETURNING held_cents
        """

RELEASE_FROM_HOLD_SQL = """
        UPDATE project_holds
        SET held_cents = held_cents - $3,
            released_total_cents = released_total_cents + $3,
            updated_at = now()
        WHERE requester_id = $1 AND project_id = $2 AND held_cents >= $3
        RETURNING held_cents
        """

ADD_SPENT_SQL = """
        INSERT INTO project_holds AS h (requester_id, project_id, spent_cents)
        VALUES ($1, $2, $3)
        ON CONFLICT (requester_id, project_id) DO UPDATE
            SET spent_cents = h.spent_cents + EXCLUDED.spent_cents, updated_at = now()
        """

# Creates the holds an override pays into for the first time (as `add_spent` does) and locks
# every hold row of a payout batch, in one statement and in (requester, project) order; answers
# each hold's current amount. The no-op update is what makes ON CONFLICT lock and return the row.
LOCK_HOLDS_SQL = """
INSERT INTO project_holds AS h (requester_id, project_id)
SELECT g.requester_id, g.project_id
FROM unnest($1::text[], $2::text[]) AS g(requester_id, project_id)
ORDER BY g.requester_id, g.project_id
ON CONFLICT (requester_id, project_id) DO UPDATE SET updated_at = h.updated_at
RETURNING h.requester_id, h.project_id, h.held_cents
"""

DRAW_HOLDS_SQL = """
UPDATE project_holds h
SET held_cents = h.held_cents - d.drawn_cents,
    spent_cents = h.spent_cents + d.spent_cents,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    AS d(requester_id, project_id, drawn_cents, spent_cents)
WHERE h.requester_id = d.requester_id AND h.project_id = d.project_id
"""


async def add_to_hold(db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int) -> int:
    return await db.fetchval(ADD_TO_HOLD_SQL, requester_id, project_id, amount_cents)


async def release_from_hold(
    db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int
) -> int | None:
    """Give unused money back; None when the hold is missing or smaller (nothing changes)."""
    return await db.fetchval(RELEASE_FROM_HOLD_SQL, requester_id, project_id, amount_cents)


async def add_spent(db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int) -> None:
    """Count money paid from `available` (overrides, bonuses) in the project's `spent`."""
    await db.execute(ADD_SPENT_SQL, requester_id, project_id, amount_cents)


async def lock_holds(db: WriteDb, groups: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Lock (creating if needed) the holds of these (requester, project) pairs; their amounts."""
    records = await db.fetch(
        LOCK_HOLDS_SQL, [requester for requester, _ in groups], [project for _, project in groups]
    )
    return {(r["requester_id"], r["project_id"]): r["held_cents"] for r in records}


async def draw_holds(
    db: WriteDb,
    *,
    groups: Sequence[tuple[str, str]],
    drawn_cents: Sequence[int],
    spent_cents: Sequence[int],
) -> int:
    """Move payouts out of locked holds (`drawn`) and count them as spent; rows updated."""
    status = await db.execute(
        DRAW_HOLDS_SQL,
        [requester for requester, _ in groups],
        [project for _, project in groups],
        list(drawn_cents),
        list(spent_cents),
    )
    return int(status.rsplit(" ", 1)[1])


async def held_cents(db: Db, *, requester_id: str, project_id: str) -> int:
    stmt = select(ProjectHold.held_cents).where(
        ProjectHold.requester_id == requester_id, ProjectHold.project_id == project_id
    )
    return await db.fetchval(stmt) or 0


async def total_spent(db: Db, *, requester_id: str) -> int:
    stmt = select(func.coalesce(func.sum(ProjectHold.spent_cents), 0).cast(BigInteger)).where(
        ProjectHold.requester_id == requester_id
    )
    return await db.fetchval(stmt) or 0
