"""SQL of withdrawals; the payout runner claims due ones with SKIP LOCKED."""

from __future__ import annotations

import asyncpg

_COLUMNS = "id, worker_id, amount_cents, status, provider_reference, created_at, paid_at"


async def insert_withdrawal(
    conn: asyncpg.Connection,
    *,
    withdrawal_id: str,
    worker_id: str,
    amount_cents: int,
    in_flight_account_id: str,
    request_transaction_id: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO withdrawals
            (id, worker_id, amount_cents, in_flight_account_id, request_transaction_id)
        VALUES ($1, $2, $3, $4, $5)
        RETURNING {_COLUMNS}
        """,
        withdrawal_id,
        worker_id,
        amount_cents,
        in_flight_account_id,
        request_transaction_id,
    )


async def list_withdrawals(
    conn: asyncpg.Connection, *, worker_id: str, before_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM withdrawals
        WHERE worker_id = $1 AND ($2::text IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        worker_id,
        before_id,
        limit,
    )


async def total_withdrawn(conn: asyncpg.Connection, *, worker_id: str) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        SELECT coalesce(sum(amount_cents), 0)::bigint AS total,
               coalesce(sum(amount_cents) FILTER (WHERE status = 'pending'), 0)::bigint AS pending
        FROM withdrawals WHERE worker_id = $1
        """,
        worker_id,
    )


async def claim_due(conn: asyncpg.Connection, *, delay_seconds: float) -> asyncpg.Record | None:
    """The oldest pending withdrawal that is due, locked; rows other runners hold are skipped,
    so several replicas never pay one withdrawal twice."""
    return await conn.fetchrow(
        """
        SELECT id, worker_id, amount_cents, in_flight_account_id FROM withdrawals
        WHERE status = 'pending' AND created_at <= now() - make_interval(secs => $1)
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        delay_seconds,
    )


async def mark_paid(
    conn: asyncpg.Connection,
    *,
    withdrawal_id: str,
    provider_reference: str,
    paid_transaction_id: str,
) -> None:
    await conn.execute(
        """
        UPDATE withdrawals
        SET status = 'paid', paid_at = now(), provider_reference = $2, paid_transaction_id = $3
        WHERE id = $1 AND status = 'pending'
        """,
        withdrawal_id,
        provider_reference,
        paid_transaction_id,
    )
