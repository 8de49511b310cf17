"""The double-entry ledger: every money movement is one transaction whose legs sum to zero.

Other domains describe a movement as legs (account, signed cents) and call `move`; they never
touch balances themselves. Accounts are addressed by deterministic ids and created on first use.
Platform-side accounts are sharded (settings.platform_account_shards) so that the fee leg of
concurrent payouts does not serialise every requester on a single row lock.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.payments.ledger import repository
from services.payments.ledger.repository import EntryRow, TransactionRow
from services.payments.ledger.schemas import LedgerCheck
from shared.database import Db, WriteDb
from shared.errors import Conflict, InsufficientFunds, NotFound
from shared.ids import new_id

NONNEGATIVE_CONSTRAINT = "ck_ledger_accounts_nonnegative"
OWNER_FK = "fk_ledger_accounts_owner_id_accounts"
CHECK_LIST_LIMIT = 100


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class ConflictingTransaction(Conflict):
    code = "conflicting_transaction"


class AccountNotFound(NotFound):
    code = "account_not_found"


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: str
    kind: str
    owner_id: str | None = None


def requester_available(requester_id: str) -> AccountRef:
    return AccountRef(f"requester:{requester_id}:available", "requester_available", requester_id)


def requester_reserved(requester_id: str) -> AccountRef:
    return AccountRef(f"requester:{requester_id}:reserved", "requester_reserved", requester_id)


def worker_available(worker_id: str) -> AccountRef:
    return AccountRef(f"worker:{worker_id}:available", "worker_available", worker_id)


def platform_revenue(shard: int) -> AccountRef:
    return AccountRef(f"platform:revenue:{shard}", "platform_revenue")


def payouts_in_flight(shard: int) -> AccountRef:
    return AccountRef(f"platform:payouts_in_flight:{shard}", "payouts_in_flight")


def external(shard: int) -> AccountRef:
    return AccountRef(f"external:world:{shard}", "external")


def pick_shard(shards: int) -> int:
    """Any shard will do: spreading writes is the point, not where they land."""
    return random.randrange(shards)


@dataclass(frozen=True, slots=True)
class NewTransaction:
    kind: str
    reference: str
    amount_cents: int
    fee_cents: int = 0
    key: str | None = None
    request_hash: bytes | None = None
    requester_id: str | None = None
    worker_id: str | None = None
    project_id: str | None = None
    task_id: str | None = None
    assignment_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


def parse_details(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """`details` as stored (asyncpg hands jsonb over as text)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    parsed = orjson.loads(value)
    return parsed if isinstance(parsed, dict) else {}


def request_hash(kind: str, body: dict[str, Any]) -> bytes:
    """What a replayed key must match: the call's kind and its body, compared by meaning."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(kind.encode() + b"\n" + canonical).digest()


async def record(db: WriteDb, tx: NewTransaction) -> tuple[TransactionRow, bool]:
    """Write the transaction row, claiming its key: (row, True) if this call acts.

    With a key already used by the same request: (the first row, False), so the caller answers
    with the first result and moves nothing. Used by a different request: 409. A concurrent
    duplicate waits on the unique index until the first commits (then replays) or rolls back
    (then acts itself), so two calls with one key can never both move money. A conflict on
    another unique index (a payout's assignment, already paid under another key) raises
    ConflictingTransaction.
    """
    row = await repository.insert_transaction(
        db,
        {
            "id": tx.id,
            "kind": tx.kind,
            "key": tx.key,
            "request_hash": tx.request_hash,
            "requester_id": tx.requester_id,
            "worker_id": tx.worker_id,
            "project_id": tx.project_id,
            "task_id": tx.task_id,
            "assignment_id": tx.assignment_id,
            "amount_cents": tx.amount_cents,
            "fee_cents": tx.fee_cents,
            "reference": tx.reference,
            "details_json": orjson.dumps(tx.details).decode(),
        },
    )
    if row is not None:
        return row, True
    first = None if tx.key is None else await repository.get_transaction_by_key(db, tx.key)
    if first is None:
        # Not the key: another unique index (a payout's assignment, paid under another key).
        raise ConflictingTransaction(
            "Another transaction already settles what this one would.",
            extra={"reference": tx.reference},
        )
    if first.request_hash is None or bytes(first.request_hash) != (tx.request_hash or b""):
        raise IdempotencyKeyReused(
            f"The key {tx.key!r} was already used for a different request.",
            extra={"key": tx.key},
        )
    return first, False


async def move(
    db: WriteDb,
    *,
    transaction_id: str,
    kind: str,
    legs: Sequence[tuple[AccountRef, int]],
) -> dict[str, int]:
    """Post the legs of one transaction; returns each account's balance after it.

    Raises InsufficientFunds when a leg would take a non-external account below zero (the
    database's CHECK decides, on the locked and current balance), and AccountNotFound when an
    owner id is not an account.
    """
    merged: dict[str, tuple[AccountRef, int]] = {}
    for account, amount in legs:
        previous = merged.get(account.id)
        merged[account.id] = (account, amount + (previous[1] if previous else 0))
    nonzero = [(a, amt) for a, amt in merged.values() if amt != 0]
    if sum(amt for _, amt in nonzero) != 0:
        raise ValueError(f"legs of {kind} {transaction_id} do not sum to zero")
    if not nonzero:
        return {}
    nonzero.sort(key=lambda leg: leg[0].id)
    try:
        await lock_accounts(db, [a for a, _ in nonzero])
        rows = await repository.post_legs(
            db,
            transaction_id=transaction_id,
            kind=kind,
            account_ids=[a.id for a, _ in nonzero],
            amounts=[amt for _, amt in nonzero],
        )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == NONNEGATIVE_CONSTRAINT:
            raise InsufficientFunds("The balance is too low for this payment.") from exc
        raise
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == OWNER_FK:
            raise AccountNotFound("No such requester or worker account.") from exc
        raise
    if len(rows) != len(nonzero):
        raise RuntimeError(f"{kind} {transaction_id}: {len(rows)} of {len(nonzero)} legs posted")
    return {r.account_id: r.balance_after_cents for r in rows}


# `record` for many payouts at once (one statement, keys claimed in key order): the rows this
# call inserted. A payout left out had its key taken (`transactions_by_key` tells a replay from a
# reuse) or its assignment already paid under another key.
record_payouts = repository.insert_payouts


async def transactions_by_key(db: Db, keys: Sequence[str]) -> dict[str, TransactionRow]:
    return await repository.transactions_by_key(db, keys)


async def lock_accounts(db: WriteDb, accounts: Iterable[AccountRef]) -> None:
    """Create the accounts used for the first time and lock them all, in id order (the one
    order every money movement takes its account locks in)."""
    by_id = {account.id: account for account in accounts}
    ordered = [by_id[account_id] for account_id in sorted(by_id)]
    if not ordered:
        return
    await repository.ensure_and_lock_accounts(
        db,
        account_ids=[a.id for a in ordered],
        account_kinds=[a.kind for a in ordered],
        owner_ids=[a.owner_id for a in ordered],
    )


async def post_many(db: WriteDb, *, kind: str, legs: Sequence[tuple[str, AccountRef, int]]) -> None:
    """Post the legs (transaction id, account, signed cents) of many transactions of one kind
    in one statement, in the order given, on accounts `lock_accounts` has locked. Each
    transaction's legs must sum to zero and none may be zero (entries never are)."""
    if not legs:
        return
    written = await repository.post_many_legs(
        db,
        kind=kind,
        transaction_ids=[transaction_id for transaction_id, _, _ in legs],
        account_ids=[account.id for _, account, _ in legs],
        amounts=[amount for _, _, amount in legs],
    )
    if written != len(legs):
        raise RuntimeError(f"{kind} batch: {written} of {len(legs)} legs posted")


async def existing_owners(db: Db, ids: Iterable[str]) -> set[str]:
    """Which of these ids are accounts (the owners of ledger accounts and holds must be)."""
    return await repository.existing_accounts(db, sorted(set(ids)))


async def balances(db: Db, accounts: Sequence[AccountRef]) -> dict[str, int]:
    """Cached balances (0 for an account never used)."""
    found = await repository.get_balances(db, [a.id for a in accounts])
    return {a.id: found.get(a.id, 0) for a in accounts}


async def list_entries(
    db: Db, *, account_ids: Sequence[str], before_id: int | None, limit: int
) -> list[EntryRow]:
    """The accounts' entries, newest first (before `before_id`), with their transaction's
    reference."""
    return await repository.list_entries(
        db, account_ids=account_ids, before_id=before_id, limit=limit
    )


async def check(db: WriteDb) -> LedgerCheck:
    """Recompute the contract's invariants from the entries, in one snapshot (the first
    statement of `db`'s transaction makes it one)."""
    await repository.begin_snapshot(db)
    totals = await repository.check_totals(db)
    unbalanced = await repository.check_unbalanced(db, CHECK_LIST_LIMIT)
    accounts = await repository.check_accounts(db, CHECK_LIST_LIMIT)
    reserved = await repository.check_reserved(db, CHECK_LIST_LIMIT)
    spent = await repository.check_spent(db, CHECK_LIST_LIMIT)
    in_flight = await repository.check_in_flight(db)
    double_payouts = await repository.check_double_payouts(db, CHECK_LIST_LIMIT)
    negative = [r.id for r in accounts if r.kind != "external" and r.derived < 0]
    cache_mismatch = [r.id for r in accounts if r.cached != r.derived]
    reserved_mismatch = [r.requester_id for r in reserved]
    in_flight_ok = in_flight.in_flight == in_flight.pending
    ok = (
        totals.debits == totals.credits
        and not unbalanced
        and not negative
        and not cache_mismatch
        and not reserved_mismatch
        and not spent
        and in_flight_ok
        and not double_payouts
    )
    return LedgerCheck(
        ok=ok,
        total_debits=totals.debits,
        total_credits=totals.credits,
        entries=totals.entries,
        accounts_negative=negative,
        reserved_mismatch=reserved_mismatch,
        unbalanced_transactions=unbalanced,
        balance_cache_mismatch=cache_mismatch,
        spent_mismatch=spent,
        payouts_in_flight_cents=in_flight.in_flight,
        pending_withdrawals_cents=in_flight.pending,
        assignments_paid_twice=double_payouts,
    )
