"""SQL of the ledger (docs/architecture.md, "Writing SQL").

Ledger posting is a money hot path, so its statements are hand-tuned (`*_SQL`): a money movement
is three statements, `insert_transaction` (which also claims the business key),
`ensure_and_lock_accounts` and `post_legs` (one statement that moves every leg's cached balance
and writes the entries). A batch of payouts is posted by their set-based twins,
`insert_payouts` (many transactions, each still claiming its own key) and `post_many_legs` (the
legs of many transactions at once, one balance update per account): a fixed handful of
statements per batch whatever its size (each takes arrays and `unnest`s them).

The ledger check's recomputations (CTEs, FILTER, FULL JOIN) are hand-tuned too; the entries
listing is Core (its shape depends on the cursor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shared.database import Db, WriteDb, as_row, as_rows
from shared.models.payments import LedgerAccount, LedgerEntry, LedgerTransaction
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class TransactionRow:
    id: str
    kind: str
    key: str | None
    request_hash: bytes | None
    requester_id: str | None
    worker_id: str | None
    project_id: str | None
    task_id: str | None
    assignment_id: str | None
    amount_cents: int
    fee_cents: int
    reference: str
    details: Any  # jsonb, decoded by the connection's codec
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostedLegRow:
    account_id: str
    balance_after_cents: int


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: int
    transaction_id: str
    account_id: str
    kind: str
    amount_cents: int
    balance_after_cents: int
    created_at: datetime
    reference: str


_TRANSACTION_COLUMNS = (
    "id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id, "
    "amount_cents, fee_cents, reference, details, created_at"
)

# Any unique conflict does nothing (the key, or a payout's assignment): with `ON CONFLICT (key)`
# a concurrent duplicate of one payout that met the assignment's index before the key's raised
# a unique violation, answered as "already paid under another key" (1 run in ~10 of 20 racing
# duplicates). The caller tells the two apart by reading the key.
INSERT_TRANSACTION_SQL = f"""
INSERT INTO ledger_transactions (
    id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    amount_cents, fee_cents, reference, details
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT DO NOTHING
RETURNING {_TRANSACTION_COLUMNS}
"""

TRANSACTION_BY_KEY_SQL = f"SELECT {_TRANSACTION_COLUMNS} FROM ledger_transactions WHERE key = $1"

TRANSACTIONS_BY_KEYS_SQL = (
    f"SELECT {_TRANSACTION_COLUMNS} FROM ledger_transactions WHERE key = ANY($1::text[])"
)

# One row per payout, in key order, so two batches with overlapping keys claim them in the same
# order and cannot deadlock on the unique index. No conflict target: a row is skipped (not an
# error) whether its key is taken or its assignment is already paid (the partial unique index
# uq_ledger_transactions_payout_assignment_id); the service tells those apart afterwards. A
# duplicate still being written by another transaction is waited for, as for a single insert.
INSERT_PAYOUTS_SQL = f"""
INSERT INTO ledger_transactions (
    id, kind, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    amount_cents, fee_cents, reference, details
)
SELECT p.id, 'payout', p.key, p.request_hash, p.requester_id, p.worker_id, p.project_id,
       p.task_id, p.assignment_id, p.reward_cents, p.fee_cents,
       coalesce('assignment:' || p.assignment_id, 'timesheet:' || p.timesheet_id),
       CASE WHEN p.timesheet_id IS NULL THEN jsonb_build_object('source', p.source)
            ELSE jsonb_build_object('source', p.source, 'timesheet_id', p.timesheet_id) END
FROM unnest(
    $1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[]
) AS p(
    id, key, request_hash, requester_id, worker_id, project_id, task_id, assignment_id,
    reward_cents, fee_cents, source, timesheet_id
)
ORDER BY p.key
ON CONFLICT DO NOTHING
RETURNING {_TRANSACTION_COLUMNS}
"""

# Which of these ids are accounts (owners of ledger accounts and holds must be): a batch asks
# about up to a thousand ids in one probe of the primary key.
EXISTING_ACCOUNTS_SQL = "SELECT id FROM accounts WHERE id = ANY($1::text[])"

# Creates the accounts a transaction uses for the first time and locks the others, in one
# statement and in id order. Every money movement takes its account locks in that one order
# (new rows included: a concurrent insert of the same id waits at the same position), so two
# movements can never deadlock, and the balances stay current until commit (no lost update).
# `DO UPDATE ... WHERE false` locks an existing row without writing a new version of it.
ENSURE_AND_LOCK_ACCOUNTS_SQL = """
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
POST_LEGS_SQL = """
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

# The legs of many transactions of one kind (a payout batch), on account rows this transaction
# has locked: each account's cached balance moves once by the sum of its legs, and each leg
# becomes an entry whose balance_after is the balance before the statement plus the running sum
# of that account's legs in the order given (so the entries read exactly as if the transactions
# had been posted one after another). The CHECK on the final balance is the judge of
# overdrafts; in a payout batch a debited account (a requester's) only receives debits, so no
# intermediate balance is lower.
POST_MANY_LEGS_SQL = """
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


async def insert_transaction(db: WriteDb, values: dict[str, Any]) -> TransactionRow | None:
    """Insert a ledger transaction; None when its `key` is already taken (by a committed row)."""
    record = await db.fetchrow(
        INSERT_TRANSACTION_SQL,
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
    return as_row(TransactionRow, record)


async def get_transaction_by_key(db: Db, key: str) -> TransactionRow | None:
    return as_row(TransactionRow, await db.fetchrow(TRANSACTION_BY_KEY_SQL, key))


async def transactions_by_key(db: Db, keys: Sequence[str]) -> dict[str, TransactionRow]:
    rows = as_rows(TransactionRow, await db.fetch(TRANSACTIONS_BY_KEYS_SQL, list(keys)))
    return {r.key: r for r in rows if r.key is not None}


async def insert_payouts(
    db: WriteDb,
    *,
    ids: Sequence[str],
    keys: Sequence[str],
    request_hashes: Sequence[bytes],
    requester_ids: Sequence[str],
    worker_ids: Sequence[str],
    project_ids: Sequence[str],
    task_ids: Sequence[str | None],
    assignment_ids: Sequence[str | None],
    reward_cents: Sequence[int],
    fee_cents: Sequence[int],
    sources: Sequence[str],
    timesheet_ids: Sequence[str | None] | None = None,
) -> list[TransactionRow]:
    """The payout transactions this call inserted (the others' key or assignment was taken)."""
    records = await db.fetch(
        INSERT_PAYOUTS_SQL,
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
        list(timesheet_ids) if timesheet_ids is not None else [None] * len(ids),
    )
    return as_rows(TransactionRow, records)


async def existing_accounts(db: Db, ids: Sequence[str]) -> set[str]:
    """Which of these ids are accounts (owners of ledger accounts and holds must be)."""
    return {r["id"] for r in await db.fetch(EXISTING_ACCOUNTS_SQL, list(ids))}


async def ensure_and_lock_accounts(
    db: WriteDb,
    *,
    account_ids: Sequence[str],
    account_kinds: Sequence[str],
    owner_ids: Sequence[str | None],
) -> None:
    await db.execute(
        ENSURE_AND_LOCK_ACCOUNTS_SQL, list(account_ids), list(account_kinds), list(owner_ids)
    )


async def post_legs(
    db: WriteDb,
    *,
    transaction_id: str,
    kind: str,
    account_ids: Sequence[str],
    amounts: Sequence[int],
) -> list[PostedLegRow]:
    records = await db.fetch(POST_LEGS_SQL, transaction_id, list(account_ids), list(amounts), kind)
    return as_rows(PostedLegRow, records)


async def post_many_legs(
    db: WriteDb,
    *,
    kind: str,
    transaction_ids: Sequence[str],
    account_ids: Sequence[str],
    amounts: Sequence[int],
) -> int:
    """Post legs of many transactions (in the order given); the number of entries written."""
    status = await db.execute(
        POST_MANY_LEGS_SQL, list(transaction_ids), list(account_ids), list(amounts), kind
    )
    return int(status.rsplit(" ", 1)[1])


async def get_balances(db: Db, account_ids: Sequence[str]) -> dict[str, int]:
    stmt = select(LedgerAccount.id, LedgerAccount.balance_cents).where(
        LedgerAccount.id.in_(list(account_ids))
    )
    return {r["id"]: r["balance_cents"] for r in await db.fetch(stmt)}


async def list_entries(
    db: Db,
    *,
    account_ids: Sequence[str],
    before_id: int | None,
    limit: int,
) -> list[EntryRow]:
    """The accounts' entries, newest first, with their transaction's reference."""
    stmt = (
        select(
            LedgerEntry.id,
            LedgerEntry.transaction_id,
            LedgerEntry.account_id,
            LedgerEntry.kind,
            LedgerEntry.amount_cents,
            LedgerEntry.balance_after_cents,
            LedgerEntry.created_at,
            LedgerTransaction.reference,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.in_(list(account_ids)))
    )
    stmt = newest_first(stmt, LedgerEntry.id, before_id=before_id, limit=limit)
    return as_rows(EntryRow, await db.fetch(stmt))


# ----------------------------------------------------------------------------- the ledger check
# Run inside one REPEATABLE READ transaction, so every figure comes from the same snapshot.


@dataclass(frozen=True, slots=True)
class CheckTotalsRow:
    credits: int
    debits: int
    entries: int


@dataclass(frozen=True, slots=True)
class CheckAccountRow:
    id: str
    kind: str
    owner_id: str | None
    cached: int
    derived: int


@dataclass(frozen=True, slots=True)
class CheckReservedRow:
    requester_id: str
    reserved: int
    held: int


@dataclass(frozen=True, slots=True)
class CheckInFlightRow:
    in_flight: int
    pending: int


BEGIN_SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

CHECK_TOTALS_SQL = """
SELECT coalesce(sum(amount_cents) FILTER (WHERE amount_cents > 0), 0)::bigint AS credits,
       coalesce(-sum(amount_cents) FILTER (WHERE amount_cents < 0), 0)::bigint AS debits,
       count(*) AS entries
FROM ledger_entries
"""

CHECK_UNBALANCED_SQL = """
SELECT transaction_id FROM ledger_entries
GROUP BY transaction_id HAVING sum(amount_cents) <> 0
ORDER BY transaction_id LIMIT $1
"""

CHECK_ACCOUNTS_SQL = """
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
CHECK_RESERVED_SQL = """
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
CHECK_SPENT_SQL = """
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

CHECK_IN_FLIGHT_SQL = """
SELECT (SELECT coalesce(sum(e.amount_cents), 0)::bigint
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.kind = 'payouts_in_flight') AS in_flight,
       (SELECT coalesce(sum(amount_cents), 0)::bigint
        FROM withdrawals WHERE status = 'pending') AS pending
"""

# An assignment, or a timesheet (no assignment: reported as its reference `timesheet:<id>`),
# paid more than once.
CHECK_DOUBLE_PAYOUTS_SQL = """
SELECT coalesce(assignment_id, reference) AS assignment_id FROM ledger_transactions
WHERE kind = 'payout' GROUP BY coalesce(assignment_id, reference) HAVING count(*) > 1
ORDER BY 1 LIMIT $1
"""


async def begin_snapshot(db: WriteDb) -> None:
    """Make the current transaction one consistent read-only snapshot (first statement only)."""
    await db.execute(BEGIN_SNAPSHOT_SQL)


async def check_totals(db: Db) -> CheckTotalsRow:
    row = as_row(CheckTotalsRow, await db.fetchrow(CHECK_TOTALS_SQL))
    assert row is not None  # an aggregate always answers one row
    return row


async def check_unbalanced(db: Db, limit: int) -> list[str]:
    return [r["transaction_id"] for r in await db.fetch(CHECK_UNBALANCED_SQL, limit)]


async def check_accounts(db: Db, limit: int) -> list[CheckAccountRow]:
    return as_rows(CheckAccountRow, await db.fetch(CHECK_ACCOUNTS_SQL, limit))


async def check_reserved(db: Db, limit: int) -> list[CheckReservedRow]:
    return as_rows(CheckReservedRow, await db.fetch(CHECK_RESERVED_SQL, limit))


async def check_spent(db: Db, limit: int) -> list[str]:
    return [r["requester_id"] for r in await db.fetch(CHECK_SPENT_SQL, limit)]


async def check_in_flight(db: Db) -> CheckInFlightRow:
    row = as_row(CheckInFlightRow, await db.fetchrow(CHECK_IN_FLIGHT_SQL))
    assert row is not None  # a SELECT without FROM always answers one row
    return row


async def check_double_payouts(db: Db, limit: int) -> list[str]:
    return [r["assignment_id"] for r in await db.fetch(CHECK_DOUBLE_PAYOUTS_SQL, limit)]


# The background check (ledger/monitor.py) takes this session lock around its run, so replicas
# never read the whole ledger at the same time; one that finds it taken skips its turn.
LEDGER_CHECK_LOCK_KEY = 0x6C65646765720001  # "ledger" + 1: a constant of this project's own
TRY_CHECK_LOCK_SQL = "SELECT pg_try_advisory_lock($1)"
CHECK_UNLOCK_SQL = "SELECT pg_advisory_unlock($1)"


async def try_check_lock(db: Db) -> bool:
    return bool(await db.fetchval(TRY_CHECK_LOCK_SQL, LEDGER_CHECK_LOCK_KEY))


async def check_unlock(db: Db) -> None:
    await db.fetchval(CHECK_UNLOCK_SQL, LEDGER_CHECK_LOCK_KEY)
