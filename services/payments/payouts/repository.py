"""SQL of batched payouts, on the raw asyncpg connection: a fixed handful of statements per
batch whatever its size (each takes arrays and `unnest`s them).

These are the set-based twins of `ledger.repository.insert_transaction` (many transactions,
each still claiming its own key) and of `post_legs` (the legs of many transactions at once, one
balance update per account), plus the holds' lock and draw for many projects.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

_TRANSACTION_COLUMNS = (
    "id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id, "
    "amount_cents, fee_cents, reference, details, created_at"
)

# One row per payout, in key order, so two batches with overlapping keys claim them in the same
# order and cannot deadlock on the unique index. No conflict target: a row is skipped (not an
# error) whether its key is taken or its assignment is already paid (the partial unique index
# uq_ledger_transactions_payout_assignment_id); the service tells those apart afterwards. A
# duplicate still being written by another transaction is waited for, as for the single call.
_INSERT_PAYOUTS = f"""
INSERT INTO ledger_transactions (
    id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    amount_cents, fee_cents, reference, details
)
SELECT p.id, 'payout', p.key, p.request_hash, p.requester_id, p.worker_id, p.project_id,
       p.task_id, p.assignment_id, p.reward_cents, p.fee_cents,
       'assignment:' || p.assignment_id, jsonb_build_object('source', p.source)
FROM unnest(
    $1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::bigint[], $10::bigint[], $11::text[]
) AS p(
    id, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    reward_cents, fee_cents, source
)
ORDER BY p.key
ON CONFLICT DO NOTHING
RETURNING {_TRANSACTION_COLUMNS}
"""

# Creates the holds an override pays into for the first time (as `count_spent` does) and locks
# every hold row of the batch, in one statement and in (requester, project) order; answers each
# hold's current amount. The no-op update is what makes ON CONFLICT lock and return the row.
_LOCK_HOLDS = """
INSERT INTO project_holds AS h (requester_id, project_id)
SELECT g.requester_id, g.project_id
FROM unnest($1::text[], $2::text[]) AS g(requester_id, project_id)
ORDER BY g.requester_id, g.project_id
ON CONFLICT (requester_id, project_id) DO UPDATE SET updated_at = h.updated_at
RETURNING h.requester_id, h.project_id, h.held_cents
"""

_DRAW_HOLDS = """
UPDATE project_holds h
SET held_cents = h.held_cents - d.drawn_cents,
    spent_cents = h.spent_cents + d.spent_cents,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    AS d(requester_id, project_id, drawn_cents, spent_cents)
WHERE h.requester_id = d.requester_id AND h.project_id = d.project_id
"""

# The legs of every payout of the batch, on account rows this transaction has locked: each
# account's cached balance moves once by the sum of its legs, and each leg becomes an entry
# whose balance_after is the balance before the batch plus the running sum of that account's
# legs in the batch's order (so the entries read exactly as if the payouts had been posted one
# after another). The CHECK on the final balance is the judge of overdrafts; in a payout batch
# a debited account (a requester's) only receives debits, so no intermediate balance is lower.
_POST_LEGS = """
WITH legs AS (
    SELECT l.transaction_id, l.account_id, l.amount_cents, l.ord
    FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY
        AS l(transaction_id, account_id, amount_cents, ord)
), totals AS (
    SELECT account_id, sum(amount_cents)::bigint AS total FROM legs GROUP BY account_id
), moved AS (
    UPDATE ledger_accounts a
    SET balance_cents = a.balance_cents + t.total, updated_at = now()
    FROM totals t
    WHERE a.id = t.account_id
    RETURNING a.id, a.balance_cents - t.total AS balance_before
)
INSERT INTO ledger_entries (transaction_id, account_id, kind, amount_cents, balance_after_cents)
SELECT legs.transaction_id, legs.account_id, $4, legs.amount_cents,
       (moved.balance_before
        + sum(legs.amount_cents) OVER (PARTITION BY legs.account_id ORDER BY legs.ord))::bigint
FROM legs JOIN moved ON moved.id = legs.account_id
ORDER BY legs.ord
"""


async def insert_payouts(
    conn: asyncpg.Connection,
    *,
    ids: Sequence[str],
    keys: Sequence[str],
    request_hashes: Sequence[bytes],
    requester_ids: Sequence[str],
    worker_ids: Sequence[str],
    project_ids: Sequence[str],
    task_ids: Sequence[str],
    assignment_ids: Sequence[str],
    reward_cents: Sequence[int],
    fee_cents: Sequence[int],
    sources: Sequence[str],
) -> list[asyncpg.Record]:
    """The rows this call inserted (the others' key or assignment was taken)."""
    return await conn.fetch(
        _INSERT_PAYOUTS,
        list(ids),
        list(keys),
        list(request_hashes),
        list(requester_ids),
        list(worker_ids),
        list(project_ids),
        list(task_ids),
        list(assignment_ids),
        list(reward_cents),
        list(fee_cents),
        list(sources),
    )


async def transactions_by_key(
    conn: asyncpg.Connection, keys: Sequence[str]
) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        f"SELECT {_TRANSACTION_COLUMNS} FROM ledger_transactions WHERE key = ANY($1::text[])",
        list(keys),
    )
    return {r["key"]: r for r in rows}


async def existing_accounts(conn: asyncpg.Connection, ids: Sequence[str]) -> set[str]:
    """Which of these ids are accounts (owners of ledger accounts and holds must be)."""
    rows = await conn.fetch("SELECT id FROM accounts WHERE id = ANY($1::text[])", list(ids))
    return {r["id"] for r in rows}


async def lock_holds(
    conn: asyncpg.Connection, groups: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Lock (creating if needed) the holds of these (requester, project) pairs; their amounts."""
    rows = await conn.fetch(
        _LOCK_HOLDS, [requester for requester, _ in groups], [project for _, project in groups]
    )
    return {(r["requester_id"], r["project_id"]): r["held_cents"] for r in rows}


async def draw_holds(
    conn: asyncpg.Connection,
    *,
    groups: Sequence[tuple[str, str]],
    drawn_cents: Sequence[int],
    spent_cents: Sequence[int],
) -> int:
    """Move payouts out of locked holds (`drawn`) and count them as spent; rows updated."""
    status = await conn.execute(
        _DRAW_HOLDS,
        [requester for requester, _ in groups],
        [project for _, project in groups],
        list(drawn_cents),
        list(spent_cents),
    )
    return int(status.rsplit(" ", 1)[1])


async def post_legs(
    conn: asyncpg.Connection,
    *,
    kind: str,
    transaction_ids: Sequence[str],
    account_ids: Sequence[str],
    amounts: Sequence[int],
) -> int:
    """Post legs of many transactions (in the order given); the number of entries written."""
    status = await conn.execute(
        _POST_LEGS, list(transaction_ids), list(account_ids), list(amounts), kind
    )
    return int(status.rsplit(" ", 1)[1])
