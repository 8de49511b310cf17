"""Payouts: the one home of the payout rules, for the single call (`POST /internal/payouts`)
and the batch (`POST /internal/payouts/batch`, how the tasks outbox delivers approvals).

`post_payouts` is the one definition of "post a payout", for any number of them: claim each
item's key, sort out replays and conflicts, then lock, decide and post the rest in a fixed
handful of set-based statements whatever their number (or refuse some and post nothing). The
single call is a batch of one (`pay`); the batch (`pay_batch`) adds rounds and savepoints so a
refused item fails alone. Why batches at all: the tasks outbox used to make one HTTP call, and
payments one ledger transaction, per payout; delivery was CPU-bound there and payouts trailed
approvals (bench figure 5).

The rules, each item answered as the single call answers: its own ledger transaction under its
own `key` (201; the same key again replays the first result, 200; with another body 409
idempotency_key_reused), at most one payout per assignment whatever the key (409 already_paid),
`reserved` money drawn from the project's hold (409 reservation_exhausted when short),
`available` money (an override) from the requester's balance (402 when short) and counted in
the project's `spent`, 404 account_not_found for an unknown owner, 422 for an invalid item (the
batch's own check; the single call's body is validated by its route). A refused item moves
nothing and, in a batch, does not stop the others.

Lock order, whatever the number of payouts: the keys (in key order), then the hold rows (by
requester, project), then the ledger accounts (by id, `ledger.service.lock_accounts`), so
concurrent batches, single payouts, reservations, releases and bonuses cannot deadlock.

Refusals are decided in Python on the locked rows, walking the items in key order (so when a
hold is short, the items that fit are paid). Keys must be claimed first (that is the lock order)
and the ledger is append-only, so a claimed key cannot be given back: a batch round that
refuses any item is rolled back to its savepoint and run again without that item. Each extra
round drops at least one item; normally there is one round. The single call needs no savepoint:
its refusal is an error, and the request's rollback undoes the claimed key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.payments.ledger import service as ledger
from services.payments.ledger.repository import TransactionRow
from services.payments.payouts.schemas import (
    PayoutBatchCreate,
    PayoutBatchItemResult,
    PayoutBatchRead,
    PayoutProblem,
)
from services.payments.reservations import service as holds
from services.payments.reservations.schemas import LedgerTransactionRead, PayoutCreate
from services.payments.reservations.service import (
    HOLD_REQUESTER_FK,
    AlreadyPaid,
    ReservationExhausted,
    transaction_read,
)
from services.payments.settings import Settings
from shared.database import WriteDb
from shared.errors import AppError, InsufficientFunds, ValidationFailed
from shared.ids import new_id
from shared.metrics import PAYOUT_CENTS, PAYOUTS

PAYOUT = "payout"
# Every series exists from the start (at 0), so a rate over it is 0 rather than missing.
for _source in ("reserved", "available"):
    PAYOUTS.labels(_source)
for _part in ("reward", "fee"):
    PAYOUT_CENTS.labels(_part)


class DuplicateKeyInBatch(ValidationFailed):
    code = "duplicate_key"


@dataclass(slots=True)
class PayoutItem:
    """One payout to post: a valid `POST /internal/payouts` body and its place in the call."""

    index: int
    data: PayoutCreate
    request_hash: bytes
    transaction_id: str = field(default_factory=new_id)

    @classmethod
    def of(cls, index: int, data: PayoutCreate) -> PayoutItem:
        return cls(
            index=index,
            data=data,
            # None left out: an assignment payout hashes exactly as before timesheets existed.
            request_hash=ledger.request_hash(
                PAYOUT, data.model_dump(mode="json", exclude_none=True)
            ),
        )

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
        """Whether the payout touches the project's hold: to draw a nonzero payout from it, or
        (an override) to count the payout in its `spent`."""
        return self.total > 0 or self.data.source == "available"

    def source_account(self) -> ledger.AccountRef:
        if self.data.source == "reserved":
            return ledger.requester_reserved(self.data.requester_id)
        return ledger.requester_available(self.data.requester_id)

    def legs(self, platform: ledger.AccountRef) -> list[tuple[ledger.AccountRef, int]]:
        """The payout's three legs, zero legs left out (entries are never zero): the reward
        and fee out of the source account, the reward to the worker, the fee to the
        platform."""
        legs = [
            (self.source_account(), -self.total),
            (ledger.worker_available(self.data.worker_id), self.data.reward_cents),
            (platform, self.data.fee_cents),
        ]
        return [(account, amount) for account, amount in legs if amount != 0]


@dataclass
class Posted:
    """What `post_payouts` did with each item, by key: applied (the new transaction), replayed
    (the key's first transaction), a conflict of its key or assignment, or refused (then
    nothing of this call was posted, and the caller must undo the claimed keys)."""

    applied: dict[str, TransactionRow] = field(default_factory=dict)
    replayed: dict[str, TransactionRow] = field(default_factory=dict)
    conflicts: dict[str, AppError] = field(default_factory=dict)
    refused: dict[str, AppError] = field(default_factory=dict)


class _Refused(Exception):
    """Raised inside a round's savepoint so that it rolls back; carries the refusals."""

    def __init__(self, refused: dict[str, AppError]) -> None:
        super().__init__(f"{len(refused)} payouts refused")
        self.refused = refused


def _platform(settings: Settings) -> ledger.AccountRef:
    return ledger.platform_revenue(ledger.pick_shard(settings.platform_account_shards))


async def pay(
    db: WriteDb, *, data: PayoutCreate, settings: Settings
) -> tuple[LedgerTransactionRead, bool]:
    """Pay an approved assignment (`POST /internal/payouts`): a batch of one. Returns (result,
    replayed); raises what the batch would answer for the item (the request then rolls back,
    its claimed key with it)."""
    item = PayoutItem.of(0, data)
    posted = await post_payouts(db, [item], _platform(settings))
    if item.key in posted.applied:
        return transaction_read(posted.applied[item.key]), False
    if item.key in posted.replayed:
        return transaction_read(posted.replayed[item.key]), True
    if item.key in posted.conflicts:
        raise posted.conflicts[item.key]
    raise posted.refused[item.key]


async def pay_batch(db: WriteDb, *, body: PayoutBatchCreate, settings: Settings) -> PayoutBatchRead:
    """Apply every valid payout of the batch that payments accepts; one result per item."""
    results: list[PayoutBatchItemResult | None] = [None] * len(body.payouts)
    pending: list[PayoutItem] = []
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
    platform = _platform(settings)
    while pending:
        try:
            async with db.savepoint():  # a savepoint per round
                posted = await post_payouts(db, pending, platform)
                if posted.refused:
                    raise _Refused(posted.refused)
        except _Refused as refusal:
            for item in pending:
                if item.key in refusal.refused:
                    results[item.index] = _failed(item.key, refusal.refused[item.key])
            pending = [item for item in pending if item.key not in refusal.refused]
            continue
        for item in pending:
            results[item.index] = _settled(item, posted)
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


def _parse(index: int, raw: dict[str, Any]) -> PayoutItem | AppError:
    try:
        data = PayoutCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "payouts", index, *e["loc"]], "msg": str(e["msg"])}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return ValidationFailed(detail, errors=errors)
    return PayoutItem.of(index, data)


def _raw_key(raw: dict[str, Any]) -> str | None:
    key = raw.get("key")
    return key if isinstance(key, str) else None


def _failed(key: str | None, err: AppError) -> PayoutBatchItemResult:
    return PayoutBatchItemResult(
        key=key, status=err.status, outcome="failed", problem=PayoutProblem(**err.body())
    )


def _settled(item: PayoutItem, posted: Posted) -> PayoutBatchItemResult:
    if item.key in posted.applied:
        row = posted.applied[item.key]
        return PayoutBatchItemResult(
            key=item.key, status=201, outcome="applied", transaction=transaction_read(row)
        )
    if item.key in posted.replayed:
        row = posted.replayed[item.key]
        return PayoutBatchItemResult(
            key=item.key, status=200, outcome="replayed", transaction=transaction_read(row)
        )
    return _failed(item.key, posted.conflicts[item.key])


async def post_payouts(db: WriteDb, items: list[PayoutItem], platform: ledger.AccountRef) -> Posted:
    """Post these payouts (distinct keys, in key order): claim the keys, sort out replays and
    conflicts, then pay the rest, or refuse some and post nothing (see `Posted.refused`)."""
    posted = Posted()
    inserted = {
        row.key: row
        for row in await ledger.record_payouts(
            db,
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
            timesheet_ids=[i.data.timesheet_id for i in items],
        )
    }
    skipped = [i for i in items if i.key not in inserted]
    if skipped:
        firsts = await ledger.transactions_by_key(db, [i.key for i in skipped])
        for item in skipped:
            first = firsts.get(item.key)
            if first is None:  # not the key: the assignment's payout exists under another key
                # (A timesheet payout has no assignment: its key is its only identity.)
                posted.conflicts[item.key] = AlreadyPaid(
                    f"Assignment {item.data.assignment_id} was already paid under another key."
                )
            elif first.request_hash is None or bytes(first.request_hash) != item.request_hash:
                posted.conflicts[item.key] = ledger.IdempotencyKeyReused(
                    f"The key {item.key!r} was already used for a different request.",
                    extra={"key": item.key},
                )
            else:
                posted.replayed[item.key] = first
    acting = [i for i in items if i.key in inserted]
    if acting:
        posted.refused = await _pay(db, acting, platform)
        if not posted.refused:
            posted.applied = {i.key: inserted[i.key] for i in acting}
    return posted


async def _pay(
    db: WriteDb, items: list[PayoutItem], platform: ledger.AccountRef
) -> dict[str, AppError]:
    """Lock the holds and accounts of these freshly claimed payouts, decide each, and post them
    all if none is refused; returns the refusals (then nothing was posted)."""
    owners = await ledger.existing_owners(
        db,
        {i.data.requester_id for i in items}
        | {i.data.worker_id for i in items if i.data.reward_cents > 0},
    )
    refused: dict[str, AppError] = {}
    for item in items:
        if item.touches_hold and item.data.requester_id not in owners:
            # No hold can exist for an unknown requester (409), and an override's spent cannot
            # be counted for one (404).
            refused[item.key] = (
                _exhausted(item, held=0)
                if item.data.source == "reserved"
                else ledger.AccountNotFound("No such requester account.")
            )
    if refused:
        return refused  # the caller undoes this round anyway: lock nothing for it
    in_play = [i for i in items if i.key not in refused]
    try:
        groups = sorted({i.hold for i in in_play if i.touches_hold})
        held = await holds.lock_holds(db, groups) if groups else {}
        await ledger.lock_accounts(
            db,
            (
                account
                for item in in_play
                for account, _ in item.legs(platform)
                if account.owner_id is None or account.owner_id in owners
            ),
        )
        overrides = {
            i.source_account() for i in in_play if i.data.source == "available" and i.total > 0
        }
        available = await ledger.balances(db, list(overrides)) if overrides else {}

        paid = _decide(in_play, owners=owners, held=held, available=available, refused=refused)
        if refused:
            return refused
        await _post(db, paid, platform)
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == ledger.NONNEGATIVE_CONSTRAINT:
            # Cannot happen on rows decided while locked unless an invariant is broken
            # elsewhere; the call as a whole is refused (a batch's caller can ask item by item).
            raise InsufficientFunds("The balance is too low for this batch of payouts.") from exc
        raise
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name in {ledger.OWNER_FK, HOLD_REQUESTER_FK}:
            raise ledger.AccountNotFound("No such requester or worker account.") from exc
        raise
    return {}


def _decide(
    items: Sequence[PayoutItem],
    *,
    owners: set[str],
    held: dict[tuple[str, str], int],
    available: dict[str, int],
    refused: dict[str, AppError],
) -> list[PayoutItem]:
    """Walk the items in key order on the locked amounts; the ones that can be paid. Refusals
    go into `refused`, checked in this order: the hold, the worker, the available balance."""
    held_left = dict(held)
    available_left = dict(available)
    paid: list[PayoutItem] = []
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


async def _post(db: WriteDb, items: Sequence[PayoutItem], platform: ledger.AccountRef) -> None:
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
        groups = sorted(spent)
        await holds.draw_holds(
            db,
            groups=groups,
            drawn_cents=[drawn[h] for h in groups],
            spent_cents=[spent[h] for h in groups],
        )
    await ledger.post_many(
        db,
        kind=PAYOUT,
        legs=[
            (item.transaction_id, account, amount)
            for item in items
            for account, amount in item.legs(platform)
        ],
    )
    _count_posted(items)


def _count_posted(items: Sequence[PayoutItem]) -> None:
    """Payouts per second and the money they move (counted when posted: a commit that fails
    afterwards, which the ledger's invariants make a bug, would be counted all the same)."""
    by_source: dict[str, int] = defaultdict(int)
    for item in items:
        by_source[item.data.source] += 1
    for source, count in by_source.items():
        PAYOUTS.labels(source).inc(count)
    PAYOUT_CENTS.labels("reward").inc(sum(item.data.reward_cents for item in items))
    PAYOUT_CENTS.labels("fee").inc(sum(item.data.fee_cents for item in items))


def _exhausted(item: PayoutItem, *, held: int) -> ReservationExhausted:
    return ReservationExhausted(
        f"The project's reservation holds {held} cents; this payout needs {item.total}.",
        extra={"held_cents": held, "needed_cents": item.total},
    )
