"""Payouts in batches: many approved assignments paid by one call and one database transaction.

Why: the tasks outbox used to make one HTTP call, and payments one ledger transaction, per
payout; delivery was CPU-bound there and payouts trailed approvals (bench figure 5). A batch
costs a fixed handful of set-based statements whatever its size.

Every item keeps the rules of the single call (`reservations.service.pay`), and is answered as
that call would have answered it: its own ledger transaction under its own `key` (201; the same
key again replays the first result, 200; with another body 409 idempotency_key_reused), at most
one payout per assignment whatever the key (409 already_paid), `reserved` money drawn from the
project's hold (409 reservation_exhausted when short), `available` money (an override) from the
requester's balance (402 when short), 404 account_not_found for an unknown owner, 422 for an
invalid item. A refused item moves nothing and does not stop the others.

Lock order: the single call's, over the whole batch. The keys (in key order), then the hold rows
(by requester, project), then the ledger accounts (by id, `ledger.repository`'s one
statement), so concurrent batches, single payouts, reservations, releases and bonuses cannot
deadlock.

Refusals are decided in Python on the locked rows, walking the items in key order (so when a
hold is short, the items that fit are paid). Keys must be claimed first (that is the lock order)
and the ledger is append-only, so a claimed key cannot be given back: a round that refuses any
item is rolled back to its savepoint and run again without that item. Each extra round drops at
least one item; normally there is one round.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.ledger import repository as ledger_repository
from services.payments.ledger import service as ledger
from services.payments.payouts import repository
from services.payments.payouts.schemas import (
    PayoutBatchCreate,
    PayoutBatchItemResult,
    PayoutBatchRead,
    PayoutProblem,
)
from services.payments.reservations.schemas import PayoutCreate
from services.payments.reservations.service import (
    HOLD_REQUESTER_FK,
    AlreadyPaid,
    ReservationExhausted,
    transaction_read,
)
from services.payments.settings import Settings
from shared.db import driver_connection
from shared.errors import AppError, InsufficientFunds, ValidationFailed
from shared.ids import new_id

PAYOUT = "payout"


class DuplicateKeyInBatch(ValidationFailed):
    code = "duplicate_key"


@dataclass(slots=True)
class _Item:
    index: int
    data: PayoutCreate
    request_hash: bytes
    transaction_id: str = field(default_factory=new_id)

    @property
    def key(self) -> str:
        return self.data.key

    @property
    def total(self) -> int:
        return self.data.reward_cents + self.data.fee_cents

    @property
    def hold(self) -> tuple[str, str]:
        return (self.data.requester_id, self.data.project_id)

    @property
    def touches_hold(self) -> bool:
        """Whether the single call would touch the project's hold: to draw a nonzero payout
        from it, or (an override) to count the payout in its `spent`."""
        return self.total > 0 or self.data.source == "available"

    def source_account(self) -> ledger.AccountRef:
        if self.data.source == "reserved":
            return ledger.requester_reserved(self.data.requester_id)
        return ledger.requester_available(self.data.requester_id)

    def legs(self, platform: ledger.AccountRef) -> list[tuple[ledger.AccountRef, int]]:
        """The single call's three legs, zero legs left out (entries are never zero)."""
        legs = [
            (self.source_account(), -self.total),
            (ledger.worker_available(self.data.worker_id), self.data.reward_cents),
            (platform, self.data.fee_cents),
        ]
        return [(account, amount) for account, amount in legs if amount != 0]


@dataclass
class _Round:
    applied: dict[str, asyncpg.Record] = field(default_factory=dict)
    replayed: dict[str, asyncpg.Record] = field(default_factory=dict)
    conflicts: dict[str, AppError] = field(default_factory=dict)
    refused: dict[str, AppError] = field(default_factory=dict)


class _Refused(Exception):
    """Raised inside a round's savepoint so that it rolls back; carries the refusals."""

    def __init__(self, refused: dict[str, AppError]) -> None:
        super().__init__(f"{len(refused)} payouts refused")
        self.refused = refused


async def pay_batch(
    session: AsyncSession, *, body: PayoutBatchCreate, settings: Settings
) -> PayoutBatchRead:
    """Apply every valid payout of the batch that payments accepts; one result per item."""
    conn = await driver_connection(session)
    results: list[PayoutBatchItemResult | None] = [None] * len(body.payouts)
    pending: list[_Item] = []
    seen: set[str] = set()
    for index, raw in enumerate(body.payouts):
        parsed = _parse(index, raw)
        if isinstance(parsed, AppError):
            results[index] = _failed(_raw_key(raw), parsed)
        elif parsed.key in seen:
            results[index] = _failed(
                parsed.key, DuplicateKeyInBatch("This key appears earlier in the same batch.")
            )
        else:
            seen.add(parsed.key)
            pending.append(parsed)
    pending.sort(key=lambda item: item.key)
    platform = ledger.platform_revenue(ledger.pick_shard(settings.platform_account_shards))
    while pending:
        try:
            async with conn.transaction():  # a savepoint per round
                outcome = await _round(conn, pending, platform)
                if outcome.refused:
                    raise _Refused(outcome.refused)
        except _Refused as refusal:
            for item in pending:
                if item.key in refusal.refused:
                    results[item.index] = _failed(item.key, refusal.refused[item.key])
            pending = [item for item in pending if item.key not in refusal.refused]
            continue
        for item in pending:
            results[item.index] = _settled(item, outcome)
        break
    done = [r for r in results if r is not None]
    if len(done) != len(results):
        raise RuntimeError(f"payout batch: {len(results) - len(done)} items left unanswered")
    return PayoutBatchRead(
        results=done,
        applied=sum(r.outcome == "applied" for r in done),
        replayed=sum(r.outcome == "replayed" for r in done),
        failed=sum(r.outcome == "failed" for r in done),
    )


def _parse(index: int, raw: dict[str, Any]) -> _Item | AppError:
    try:
        data = PayoutCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "payouts", index, *e["loc"]], "msg": str(e["msg"])}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return ValidationFailed(detail, errors=errors)
    return _Item(
        index=index,
        data=data,
        request_hash=ledger.request_hash(PAYOUT, data.model_dump(mode="json")),
    )


def _raw_key(raw: dict[str, Any]) -> str | None:
    key = raw.get("key")
    return key if isinstance(key, str) else None


def _failed(key: str | None, err: AppError) -> PayoutBatchItemResult:
    return PayoutBatchItemResult(
        key=key, status=err.status, outcome="failed", problem=PayoutProblem(**err.body())
    )


def _settled(item: _Item, outcome: _Round) -> PayoutBatchItemResult:
    if item.key in outcome.applied:
        row = outcome.applied[item.key]
        return PayoutBatchItemResult(
            key=item.key, status=201, outcome="applied", transaction=transaction_read(row)
        )
    if item.key in outcome.replayed:
        row = outcome.replayed[item.key]
        return PayoutBatchItemResult(
            key=item.key, status=200, outcome="replayed", transaction=transaction_read(row)
        )
    return _failed(item.key, outcome.conflicts[item.key])


async def _round(
    conn: asyncpg.Connection, items: list[_Item], platform: ledger.AccountRef
) -> _Round:
    """Claim the keys, sort out replays and conflicts, then pay the rest (or refuse some)."""
    outcome = _Round()
    inserted = {
        row["key"]: row
        for row in await repository.insert_payouts(
            conn,
            ids=[i.transaction_id for i in items],
            keys=[i.key for i in items],
            request_hashes=[i.request_hash for i in items],
            requester_ids=[i.data.requester_id for i in items],
            worker_ids=[i.data.worker_id for i in items],
            project_ids=[i.data.project_id for i in items],
            task_ids=[i.data.task_id for i in items],
            assignment_ids=[i.data.assignment_id for i in items],
            reward_cents=[i.data.reward_cents for i in items],
            fee_cents=[i.data.fee_cents for i in items],
            sources=[i.data.source for i in items],
        )
    }
    skipped = [i for i in items if i.key not in inserted]
    if skipped:
        firsts = await repository.transactions_by_key(conn, [i.key for i in skipped])
        for item in skipped:
            first = firsts.get(item.key)
            if first is None:  # not the key: the assignment's payout exists under another key
                outcome.conflicts[item.key] = AlreadyPaid(
                    f"Assignment {item.data.assignment_id} was already paid under another key."
                )
            elif first["request_hash"] is None or bytes(first["request_hash"]) != item.request_hash:
                outcome.conflicts[item.key] = ledger.IdempotencyKeyReused(
                    f"The key {item.key!r} was already used for a different request.",
                    extra={"key": item.key},
                )
            else:
                outcome.replayed[item.key] = first
    acting = [i for i in items if i.key in inserted]
    if acting:
        outcome.refused = await _pay(conn, acting, platform)
        outcome.applied = {i.key: inserted[i.key] for i in acting}
    return outcome


async def _pay(
    conn: asyncpg.Connection, items: list[_Item], platform: ledger.AccountRef
) -> dict[str, AppError]:
    """Lock the holds and accounts of these freshly claimed payouts, decide each, and post them
    all if none is refused; returns the refusals (then nothing was posted)."""
    owners = await repository.existing_accounts(
        conn,
        sorted(
            {i.data.requester_id for i in items}
            | {i.data.worker_id for i in items if i.data.reward_cents > 0}
        ),
    )
    refused: dict[str, AppError] = {}
    for item in items:
        if item.touches_hold and item.data.requester_id not in owners:
            # As the single call: no hold can exist for an unknown requester (409), and an
            # override's spent cannot be counted for one (404).
            refused[item.key] = (
                _exhausted(item, held=0)
                if item.data.source == "reserved"
                else ledger.AccountNotFound("No such requester account.")
            )
    if refused:
        return refused  # the round is rolled back anyway: lock nothing for it
    in_play = [i for i in items if i.key not in refused]
    try:
        holds = sorted({i.hold for i in in_play if i.touches_hold})
        held = await repository.lock_holds(conn, holds) if holds else {}
        accounts = {
            account.id: account
            for item in in_play
            for account, _ in item.legs(platform)
            if account.owner_id is None or account.owner_id in owners
        }
        if accounts:
            ordered = [accounts[account_id] for account_id in sorted(accounts)]
            await ledger_repository.ensure_and_lock_accounts(
                conn,
                account_ids=[a.id for a in ordered],
                account_kinds=[a.kind for a in ordered],
                owner_ids=[a.owner_id for a in ordered],
            )
        overrides = {
            i.source_account() for i in in_play if i.data.source == "available" and i.total > 0
        }
        available = await ledger.balances(conn, list(overrides)) if overrides else {}

        paid = _decide(in_play, owners=owners, held=held, available=available, refused=refused)
        if refused:
            return refused
        await _post(conn, paid, platform)
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == ledger.NONNEGATIVE_CONSTRAINT:
            # Cannot happen on rows decided while locked unless an invariant is broken
            # elsewhere; the batch as a whole is refused (the caller can ask item by item).
            raise InsufficientFunds("The balance is too low for this batch of payouts.") from exc
        raise
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name in {ledger.OWNER_FK, HOLD_REQUESTER_FK}:
            raise ledger.AccountNotFound("No such requester or worker account.") from exc
        raise
    return {}


def _decide(
    items: Sequence[_Item],
    *,
    owners: set[str],
    held: dict[tuple[str, str], int],
    available: dict[str, int],
    refused: dict[str, AppError],
) -> list[_Item]:
    """Walk the items in key order on the locked amounts; the ones that can be paid. Refusals
    go into `refused`, in the single call's order of checks."""
    held_left = dict(held)
    available_left = dict(available)
    paid: list[_Item] = []
    for item in items:
        worker_known = item.data.reward_cents == 0 or item.data.worker_id in owners
        error: AppError | None = None
        if item.data.source == "reserved":
            if item.total > 0 and held_left[item.hold] < item.total:
                error = _exhausted(item, held=held_left[item.hold])
            elif not worker_known:
                error = ledger.AccountNotFound("No such requester or worker account.")
        elif not worker_known:
            error = ledger.AccountNotFound("No such requester or worker account.")
        elif item.total > 0 and available_left[item.source_account().id] < item.total:
            error = InsufficientFunds("The balance is too low for this payment.")
        if error is not None:
            refused[item.key] = error
            continue
        if item.total > 0:
            if item.data.source == "reserved":
                held_left[item.hold] -= item.total
            else:
                available_left[item.source_account().id] -= item.total
        paid.append(item)
    return paid


async def _post(
    conn: asyncpg.Connection, items: Sequence[_Item], platform: ledger.AccountRef
) -> None:
    """Draw the holds and post every leg, one statement each, on rows already locked."""
    drawn: dict[tuple[str, str], int] = defaultdict(int)
    spent: dict[tuple[str, str], int] = defaultdict(int)
    for item in items:
        if item.total == 0:
            continue
        spent[item.hold] += item.total
        if item.data.source == "reserved":
            drawn[item.hold] += item.total
    if spent:
        holds = sorted(spent)
        updated = await repository.draw_holds(
            conn,
            groups=holds,
            drawn_cents=[drawn[h] for h in holds],
            spent_cents=[spent[h] for h in holds],
        )
        if updated != len(holds):
            raise RuntimeError(f"payout batch: {updated} of {len(holds)} holds drawn")
    legs = [(item.transaction_id, leg) for item in items for leg in item.legs(platform)]
    if not legs:
        return
    written = await repository.post_legs(
        conn,
        kind=PAYOUT,
        transaction_ids=[transaction_id for transaction_id, _ in legs],
        account_ids=[account.id for _, (account, _) in legs],
        amounts=[amount for _, (_, amount) in legs],
    )
    if written != len(legs):
        raise RuntimeError(f"payout batch: {written} of {len(legs)} legs posted")


def _exhausted(item: _Item, *, held: int) -> ReservationExhausted:
    return ReservationExhausted(
        f"The project's reservation holds {held} cents; this payout needs {item.total}.",
        extra={"held_cents": held, "needed_cents": item.total},
    )
