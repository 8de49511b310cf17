"""Balances and the caller's ledger entries, both shaped by the caller's role."""

from __future__ import annotations

from services.payments.balances import repository
from services.payments.balances.schemas import RequesterBalance, TransactionEntry, WorkerBalance
from services.payments.ledger import service as ledger
from services.payments.reservations import service as reservations
from services.payments.withdrawals import service as withdrawals
from shared.auth import Caller
from shared.database import Db
from shared.errors import ValidationFailed
from shared.pagination import Page, PageParams


def _accounts(caller: Caller) -> dict[str, ledger.AccountRef]:
    """The caller's ledger accounts by their public name."""
    if caller.kind == "requester":
        return {
            "available": ledger.requester_available(caller.account_id),
            "reserved": ledger.requester_reserved(caller.account_id),
        }
    return {"available": ledger.worker_available(caller.account_id)}


async def get_balance(db: Db, *, caller: Caller) -> RequesterBalance | WorkerBalance:
    accounts = _accounts(caller)
    cached = await ledger.balances(db, list(accounts.values()))
    if caller.kind == "requester":
        return RequesterBalance(
            available=cached[accounts["available"].id],
            reserved=cached[accounts["reserved"].id],
            spent=await reservations.total_spent(db, requester_id=caller.account_id),
        )
    withdrawn, withdrawing = await withdrawals.withdrawn_cents(db, worker_id=caller.account_id)
    return WorkerBalance(
        pending=await repository.pending_rewards(db, worker_id=caller.account_id),
        available=cached[accounts["available"].id],
        withdrawn=withdrawn,
        withdrawing=withdrawing,
    )


def _entry_cursor(page: PageParams) -> int | None:
    if not page.cursor:
        return None
    value = page.cursor[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(
            "The cursor is not one this API produced.",
            code="invalid_cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return value


async def list_transactions(db: Db, *, caller: Caller, page: PageParams) -> Page[TransactionEntry]:
    accounts = _accounts(caller)
    names = {account.id: name for name, account in accounts.items()}
    rows = await ledger.list_entries(
        db,
        account_ids=list(names),
        before_id=_entry_cursor(page),
        limit=page.fetch,
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(
        items=[
            TransactionEntry(
                id=str(r.id),
                transaction_id=r.transaction_id,
                kind=r.kind,
                account=names[r.account_id],
                amount=r.amount_cents,
                balance_after=r.balance_after_cents,
                reference=r.reference,
                created_at=r.created_at,
            )
            for r in items
        ],
        next_cursor=next_cursor,
    )
