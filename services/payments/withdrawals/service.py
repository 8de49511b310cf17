"""Withdrawals: money leaves the worker's `available` when asked (into the platform's
"payouts in flight" account, so `available` can never be spent twice); the test payout
provider pays it out to the outside world later, in the background (runner.py)."""

from __future__ import annotations

from dataclasses import asdict

from services.payments.ledger import service as ledger
from services.payments.providers import PayoutProvider
from services.payments.settings import Settings
from services.payments.withdrawals import repository
from services.payments.withdrawals.repository import WithdrawalRow
from services.payments.withdrawals.schemas import WithdrawalRead
from shared.database import Db, WriteDb
from shared.errors import ValidationFailed
from shared.ids import new_id
from shared.money import format_cents
from shared.pagination import Page, PageParams


def _read(row: WithdrawalRow) -> WithdrawalRead:
    """The row's own fields, the amount under the API's name."""
    return WithdrawalRead.model_validate({**asdict(row), "amount": row.amount_cents})


async def request_withdrawal(
    db: WriteDb, *, worker_id: str, amount_cents: int, settings: Settings
) -> WithdrawalRead:
    """402 when `available` is short: the database's CHECK decides on the locked balance row,
    so concurrent withdrawals can never take it below zero."""
    if amount_cents < settings.min_withdrawal_cents:
        message = f"must be at least {format_cents(settings.min_withdrawal_cents)}"
        raise ValidationFailed(
            f"amount: {message}", errors=[{"loc": ["body", "amount"], "msg": message}]
        )
    withdrawal_id = new_id()
    in_flight = ledger.payouts_in_flight(ledger.pick_shard(settings.platform_account_shards))
    row, _ = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="withdrawal",
            worker_id=worker_id,
            amount_cents=amount_cents,
            reference=f"withdrawal:{withdrawal_id}",
            details={"withdrawal_id": withdrawal_id},
        ),
    )
    await ledger.move(
        db,
        transaction_id=row.id,
        kind="withdrawal",
        legs=[(ledger.worker_available(worker_id), -amount_cents), (in_flight, amount_cents)],
    )
    created = await repository.insert_withdrawal(
        db,
        withdrawal_id=withdrawal_id,
        worker_id=worker_id,
        amount_cents=amount_cents,
        in_flight_account_id=in_flight.id,
        request_transaction_id=row.id,
    )
    return _read(created)


async def list_withdrawals(db: Db, *, worker_id: str, page: PageParams) -> Page[WithdrawalRead]:
    rows = await repository.list_withdrawals(
        db, worker_id=worker_id, before_id=page.before, limit=page.fetch
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[_read(r) for r in items], next_cursor=next_cursor)


async def withdrawn_cents(db: Db, *, worker_id: str) -> tuple[int, int]:
    """(all withdrawals, the pending part of them) of a worker, in cents."""
    row = await repository.total_withdrawn(db, worker_id=worker_id)
    return row.total, row.pending


async def pay_next_due(db: WriteDb, *, settings: Settings, provider: PayoutProvider) -> bool:
    """Pay the oldest due withdrawal, if any (False when none is due), in `db`'s transaction
    (the caller's: one per withdrawal).

    The `withdrawal-paid:<id>` key makes the ledger refuse a second payment of one withdrawal
    even if two runners ever got hold of it.
    """
    due = await repository.claim_due(db, delay_seconds=settings.payout_delay_seconds)
    if due is None:
        return False
    reference = await provider.send(
        worker_id=due.worker_id, amount_cents=due.amount_cents, withdrawal_id=due.id
    )
    row, acting = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="withdrawal_paid",
            key=f"withdrawal-paid:{due.id}",
            request_hash=ledger.request_hash("withdrawal_paid", {"withdrawal_id": due.id}),
            worker_id=due.worker_id,
            amount_cents=due.amount_cents,
            reference=f"withdrawal:{due.id}",
            details={"withdrawal_id": due.id, "provider_reference": reference},
        ),
    )
    if acting:
        in_flight = ledger.AccountRef(due.in_flight_account_id, "payouts_in_flight")
        world = ledger.external(ledger.pick_shard(settings.platform_account_shards))
        await ledger.move(
            db,
            transaction_id=row.id,
            kind="withdrawal_paid",
            legs=[(in_flight, -due.amount_cents), (world, due.amount_cents)],
        )
    await repository.mark_paid(
        db,
        withdrawal_id=due.id,
        provider_reference=ledger.parse_details(row.details).get("provider_reference", reference),
        paid_transaction_id=row.id,
    )
    return True
