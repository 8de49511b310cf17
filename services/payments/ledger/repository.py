"""SQL of the ledger, on the raw asyncpg connection (these statements are the money hot path).

A money movement is three statements: `insert_transaction` (which also claims the business
key), `ensure_and_lock_accounts` and `post_legs` (one statement that moves every leg's cached
balance and writes the entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

_TRANSACTION_COLUMNS = (
    "id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id, "
    "amount_cents, fee_cents, reference, details, created_at"
)

# Any unique conflict does nothing (the key, or a payout's assignment): with `ON CONFLICT (key)`
# a concurrent duplicate of one payout that met the assignment's index before the key's raised
# a unique violation, answered as "already paid under another key" (1 run in ~10 of 20 racing
# duplicates). The caller tells the two apart by reading the key.
_INSERT_TRANSACTION = f"""
INSERT INTO ledger_transactions (
    id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    amount_cents, fee_cents, reference, details
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT DO NOTHING
RETURNING {_TRANSACTION_COLUMNS}
"""

# Creates the accounts a transaction uses for the first time and locks the others, in one
# statement and in id order. Every money movement takes its account locks in that one order
# (new rows included: a concurrent insert of the same id waits at the same position), so two
# movements can never deadlock, and the balances stay current until commit (no lost update).
# `DO UPDATE ... WHERE false` locks an existing row without writing a new version of it.
_ENSURE_AND_LOCK_ACCOUNTS = """
INSERT INTO ledger_accounts AS a (id, kind, owner_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS l(id, kind, owner_id)
ORDER BY id
ON CONFLICT (id) DO UPDATE SET updated_at = a.updated_at WHERE false
"""

# All legs in one statement, on rows this transaction has locked: each balance moves by its
# leg and each leg becomes an entry carrying the balance after it. A debit that would take a
# non-external account below zero violates ck_ledger_accounts_nonnegative (the CHECK is the
# judge, on the current balance). Not an upsert: Postgres checks CHECK constraints on the row
# proposed for insertion before it detects the conflict, so a debit proposed as a negative new
# row would fail even when the existing balance covers it.
_POST_LEGS = """
WITH legs AS (
    SELECT * FROM unnest($2::text[], $3::bigint[]) AS l(account_id, amount_cents)
), moved AS (
    UPDATE ledger_accounts a
    SET balance_cents = a.balance_cents + legs.amount_cents, updated_at = now()
    FROM legs
    WHERE a.id = legs.account_id
    RETURNING a.id, a.balance_cents
)
INSERT INTO ledger_entries (transaction_id, account_id, kind, amount_cents, balance_after_cents)
SELECT $1, legs.account_id, $4, legs.amount_cents, moved.balance_cents
FROM legs JOIN moved ON moved.id = legs.account_id
RETURNING account_id, balance_after_cents
"""


async def insert_transaction(
    conn: asyncpg.Connection, values: dict[str, Any]
) -> asyncpg.Record | None:
    """Insert a ledger transaction; None when its `key` is already taken (by a committed row)."""
    return await conn.fetchrow(
        _INSERT_TRANSACTION,
        values["id"],
        values["kind"],
        values.get("key"),
        values.get("request_hash"),
        values.get("requester_id"),
        values.get("worker_id"),
        values.get("project_id"),
        values.get("task_id"),
        values.get("assignment_id"),
        values["amount_cents"],
        values.get("fee_cents", 0),
        values["reference"],
        values.get("details_json", "{}"),
    )


async def get_transaction_by_key(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_TRANSACTION_COLUMNS} FROM ledger_transactions WHERE key = $1", key
    )


async def ensure_and_lock_accounts(
    conn: asyncpg.Connection,
    *,
    account_ids: Sequence[str],
    account_kinds: Sequence[str],
    owner_ids: Sequence[str | None],
) -> None:
    await conn.execute(
        _ENSURE_AND_LOCK_ACCOUNTS, list(account_ids), list(account_kinds), list(owner_ids)
    )


async def post_legs(
    conn: asyncpg.Connection,
    *,
    transaction_id: str,
    kind: str,
    account_ids: Sequence[str],
    amounts: Sequence[int],
) -> list[asyncpg.Record]:
    return await conn.fetch(_POST_LEGS, transaction_id, list(account_ids), list(amounts), kind)


async def get_balances(conn: asyncpg.Connection, account_ids: Sequence[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT id, balance_cents FROM ledger_accounts WHERE id = ANY($1::text[])",
        list(account_ids),
    )
    return {r["id"]: r["balance_cents"] for r in rows}


async def list_entries(
    conn: asyncpg.Connection,
    *,
    account_ids: Sequence[str],
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The accounts' entries, newest first, with their transaction's reference."""
    return await conn.fetch(
        """
        SELECT e.id, e.transaction_id, e.account_id, e.kind, e.amount_cents,
               e.balance_after_cents, e.created_at, t.reference
        FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE e.account_id = ANY($1::text[]) AND ($2::bigint IS NULL OR e.id < $2)
        ORDER BY e.id DESC
        LIMIT $3
        """,
        list(account_ids),
        before_id,
        limit,
    )


# ----------------------------------------------------------------------------- the ledger check
# Run inside one REPEATABLE READ transaction, so every figure comes from the same snapshot.

_CHECK_TOTALS = """
SELECT coalesce(sum(amount_cents) FILTER (WHERE amount_cents > 0), 0)::bigint AS credits,
       coalesce(-sum(amount_cents) FILTER (WHERE amount_cents < 0), 0)::bigint AS debits,
       count(*) AS entries
FROM ledger_entries
"""

_CHECK_UNBALANCED = """
SELECT transaction_id FROM ledger_entries
GROUP BY transaction_id HAVING sum(amount_cents) <> 0
ORDER BY transaction_id LIMIT $1
"""

_CHECK_ACCOUNTS = """
WITH derived AS (
    SELECT account_id, sum(amount_cents)::bigint AS balance FROM ledger_entries GROUP BY account_id
)
SELECT a.id, a.kind, a.owner_id, a.balance_cents AS cached, coalesce(d.balance, 0) AS derived
FROM ledger_accounts a LEFT JOIN derived d ON d.account_id = a.id
WHERE (a.kind <> 'external' AND coalesce(d.balance, 0) < 0)
   OR a.balance_cents <> coalesce(d.balance, 0)
ORDER BY a.id LIMIT $1
"""

# `reserved` of each requester, from the entries, against the sum of the requester's holds.
_CHECK_RESERVED = """
WITH reserved AS (
    SELECT a.owner_id AS requester_id, coalesce(sum(e.amount_cents), 0)::bigint AS reserved
    FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
    WHERE a.kind = 'requester_reserved'
    GROUP BY a.owner_id
), held AS (
    SELECT requester_id, sum(held_cents)::bigint AS held FROM project_holds GROUP BY requester_id
)
SELECT coalesce(r.requester_id, h.requester_id) AS requester_id,
       coalesce(r.reserved, 0) AS reserved, coalesce(h.held, 0) AS held
FROM reserved r FULL JOIN held h ON h.requester_id = r.requester_id
WHERE coalesce(r.reserved, 0) <> coalesce(h.held, 0)
ORDER BY 1 LIMIT $1
"""

# Money spent (payouts and bonuses out of a requester's accounts) against the holds' `spent`.
_CHECK_SPENT = """
WITH spent AS (
    SELECT a.owner_id AS requester_id, -sum(e.amount_cents)::bigint AS spent
    FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
    WHERE a.kind IN ('requester_available', 'requester_reserved')
      AND e.kind IN ('payout', 'bonus')
    GROUP BY a.owner_id
), recorded AS (
    SELECT requester_id, sum(spent_cents)::bigint AS spent FROM project_holds GROUP BY requester_id
)
SELECT coalesce(s.requester_id, r.requester_id) AS requester_id
FROM spent s FULL JOIN recorded r ON r.requester_id = s.requester_id
WHERE coalesce(s.spent, 0) <> coalesce(r.spent, 0)
ORDER BY 1 LIMIT $1
"""

_CHECK_IN_FLIGHT = """
SELECT (SELECT coalesce(sum(e.amount_cents), 0)::bigint
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.kind = 'payouts_in_flight') AS in_flight,
       (SELECT coalesce(sum(amount_cents), 0)::bigint
        FROM withdrawals WHERE status = 'pending') AS pending
"""

_CHECK_DOUBLE_PAYOUTS = """
SELECT assignment_id FROM ledger_transactions
WHERE kind = 'payout' GROUP BY assignment_id HAVING count(*) > 1
ORDER BY 1 LIMIT $1
"""


async def begin_snapshot(conn: asyncpg.Connection) -> None:
    """Make the current transaction one consistent read-only snapshot (first statement only)."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


async def check_totals(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(_CHECK_TOTALS)


async def check_unbalanced(conn: asyncpg.Connection, limit: int) -> list[str]:
    return [r["transaction_id"] for r in await conn.fetch(_CHECK_UNBALANCED, limit)]


async def check_accounts(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_CHECK_ACCOUNTS, limit)


async def check_reserved(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_CHECK_RESERVED, limit)


async def check_spent(conn: asyncpg.Connection, limit: int) -> list[str]:
    return [r["requester_id"] for r in await conn.fetch(_CHECK_SPENT, limit)]


async def check_in_flight(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(_CHECK_IN_FLIGHT)


async def check_double_payouts(conn: asyncpg.Connection, limit: int) -> list[str]:
    return [r["assignment_id"] for r in await conn.fetch(_CHECK_DOUBLE_PAYOUTS, limit)]
