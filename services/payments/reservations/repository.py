"""SQL of per-project holds: the money reserved for a project's slots that are not yet paid or
released. A requester's `reserved` ledger balance always equals the sum of its holds."""

from __future__ import annotations

import asyncpg


async def add_to_hold(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> int:
    return await conn.fetchval(
        """
        INSERT INTO project_holds AS h (requester_id, project_id, held_cents, reserved_total_cents)
        VALUES ($1, $2, $3, $3)
        ON CONFLICT (requester_id, project_id) DO UPDATE
            SET held_cents = h.held_cents + EXCLUDED.held_cents,
                reserved_total_cents = h.reserved_total_cents + EXCLUDED.reserved_total_cents,
                updated_at = now()
        RETURNING held_cents
        """,
        requester_id,
        project_id,
        amount_cents,
    )


async def draw_from_hold_for_payment(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> int | None:
    """Take a payment out of the hold; None when the hold is missing or short (nothing changes)."""
    return await conn.fetchval(
        """
        UPDATE project_holds
        SET held_cents = held_cents - $3, spent_cents = spent_cents + $3, updated_at = now()
        WHERE requester_id = $1 AND project_id = $2 AND held_cents >= $3
        RETURNING held_cents
        """,
        requester_id,
        project_id,
        amount_cents,
    )


async def release_from_hold(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> int | None:
    """Give unused money back; None when the hold is missing or smaller (nothing changes)."""
    return await conn.fetchval(
        """
        UPDATE project_holds
        SET held_cents = held_cents - $3,
            released_total_cents = released_total_cents + $3,
            updated_at = now()
        WHERE requester_id = $1 AND project_id = $2 AND held_cents >= $3
        RETURNING held_cents
        """,
        requester_id,
        project_id,
        amount_cents,
    )


async def add_spent(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    """Count money paid from `available` (overrides, bonuses) in the project's `spent`."""
    await conn.execute(
        """
        INSERT INTO project_holds AS h (requester_id, project_id, spent_cents)
        VALUES ($1, $2, $3)
        ON CONFLICT (requester_id, project_id) DO UPDATE
            SET spent_cents = h.spent_cents + EXCLUDED.spent_cents, updated_at = now()
        """,
        requester_id,
        project_id,
        amount_cents,
    )


async def held_cents(conn: asyncpg.Connection, *, requester_id: str, project_id: str) -> int:
    value = await conn.fetchval(
        "SELECT held_cents FROM project_holds WHERE requester_id = $1 AND project_id = $2",
        requester_id,
        project_id,
    )
    return value or 0


async def total_spent(conn: asyncpg.Connection, *, requester_id: str) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(spent_cents), 0)::bigint FROM project_holds WHERE requester_id = $1",
        requester_id,
    )
    return value or 0
