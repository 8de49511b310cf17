"""Earnings from the worker's ledger entries (payouts and bonuses), joined to the shared
schema's `ledger_transactions` -> `assignments` / `projects` for hours and titles.

`$2`/`$3` bound the entries' time ([from, to) in UTC); NULL leaves that side open.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg

_WINDOW = """
    e.account_id = $1 AND e.kind IN ('payout', 'bonus')
    AND ($2::timestamptz IS NULL OR e.created_at >= $2)
    AND ($3::timestamptz IS NULL OR e.created_at < $3)
"""


async def by_day(
    conn: asyncpg.Connection, *, account_id: str, start: datetime | None, end: datetime | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day,
               sum(e.amount_cents)::bigint AS amount,
               count(*) FILTER (WHERE e.kind = 'payout') AS assignments,
               coalesce(sum(e.amount_cents) FILTER (WHERE e.kind = 'bonus'), 0)::bigint
                   AS bonuses
        FROM ledger_entries e
        WHERE {_WINDOW}
        GROUP BY day ORDER BY day
        """,
        account_id,
        start,
        end,
    )


async def by_project(
    conn: asyncpg.Connection, *, account_id: str, start: datetime | None, end: datetime | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT t.project_id, p.title AS project_title,
               sum(e.amount_cents)::bigint AS amount,
               count(*) FILTER (WHERE e.kind = 'payout') AS assignments
        FROM ledger_entries e
        JOIN ledger_transactions t ON t.id = e.transaction_id
        LEFT JOIN projects p ON p.id = t.project_id
        WHERE {_WINDOW}
        GROUP BY t.project_id, p.title
        ORDER BY amount DESC, t.project_id
        """,
        account_id,
        start,
        end,
    )


async def seconds_worked(
    conn: asyncpg.Connection, *, account_id: str, start: datetime | None, end: datetime | None
) -> Decimal:
    value = await conn.fetchval(
        f"""
        SELECT coalesce(sum(extract(epoch FROM a.submitted_at - a.accepted_at)), 0)
        FROM ledger_entries e
        JOIN ledger_transactions t ON t.id = e.transaction_id
        JOIN assignments a ON a.id = t.assignment_id
        WHERE {_WINDOW} AND e.kind = 'payout' AND a.submitted_at IS NOT NULL
        """,
        account_id,
        start,
        end,
    )
    return Decimal(value)
