"""Money for the tasks service's slots: reserve, release, and the holds payouts draw on (paying
an approved assignment is payouts.service's: the payout rules have one home there).

Each call acts at most once per `key` (see ledger.service.record): a retry after a timeout
answers the first result and moves nothing. Lock order, the same for every call that touches a
hold: the transaction's key, then the hold row, then the ledger accounts (sorted by id), so
concurrent calls cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict

import asyncpg

from services.payments.ledger import service as ledger
from services.payments.ledger.repository import TransactionRow
from services.payments.reservations import repository
from services.payments.reservations.schemas import (
    LedgerTransactionRead,
    ReleaseCreate,
    ReservationCreate,
)
from shared.database import Db, WriteDb
from shared.errors import Conflict

HOLD_REQUESTER_FK = "fk_project_holds_requester_id_accounts"


class ReservationExhausted(Conflict):
    """The project's hold is smaller than asked: a bookkeeping bug upstream, never expected."""

    code = "reservation_exhausted"


class AlreadyPaid(Conflict):
    code = "already_paid"


def transaction_read(row: TransactionRow) -> LedgerTransactionRead:
    """A ledger transaction row as the internal calls answer it (also for payouts): the row's
    own fields, its id as `transaction_id` and a payout's `source` from its details."""
    source = ledger.parse_details(row.details).get("source")
    return LedgerTransactionRead.model_validate(
        {**asdict(row), "transaction_id": row.id, "source": source}
    )


@contextmanager
def _requester_must_exist() -> Iterator[None]:
    """A hold names its requester's account: a missing one is a 404, not a server error."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == HOLD_REQUESTER_FK:
            raise ledger.AccountNotFound("No such requester account.") from exc
        raise


async def _add_to_hold(
    db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    with _requester_must_exist():
        await repository.add_to_hold(
            db, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )


async def count_spent(
    db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    """Count money paid out of `available` on a project's behalf (overrides, bonuses) in the
    project's `spent`."""
    with _requester_must_exist():
        await repository.add_spent(
            db, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )


async def lock_holds(db: WriteDb, groups: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Lock the holds of these (requester, project) pairs, in that order, creating the missing
    ones (an override counts its `spent` in a hold it may be the first to touch); their
    amounts held. For payouts: the hold rows come after the keys and before the accounts."""
    return await repository.lock_holds(db, groups)


async def draw_holds(
    db: WriteDb,
    *,
    groups: Sequence[tuple[str, str]],
    drawn_cents: Sequence[int],
    spent_cents: Sequence[int],
) -> None:
    """Take payouts out of holds `lock_holds` has locked (`drawn`, for `reserved` payouts) and
    count them in the holds' `spent` (every payout)."""
    updated = await repository.draw_holds(
        db, groups=groups, drawn_cents=drawn_cents, spent_cents=spent_cents
    )
    if updated != len(groups):
        raise RuntimeError(f"payout batch: {updated} of {len(groups)} holds drawn")


async def _record(
    db: WriteDb, kind: str, data: ReservationCreate | ReleaseCreate
) -> tuple[TransactionRow, bool]:
    """The ledger transaction of a project's money moving (`ledger.record`: the row and whether
    this call acts)."""
    return await ledger.record(
        db,
        ledger.NewTransaction(
            kind=kind,
            key=data.key,
            request_hash=ledger.request_hash(kind, data.model_dump(mode="json")),
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
            reference=f"project:{data.project_id}",
        ),
    )


async def _move(
    db: WriteDb,
    row: TransactionRow,
    data: ReservationCreate | ReleaseCreate,
    source: Callable[[str], ledger.AccountRef],
    target: Callable[[str], ledger.AccountRef],
) -> None:
    """The transaction's legs: its amount from one of the requester's accounts to another."""
    requester_id, amount = data.requester_id, data.amount_cents
    await ledger.move(
        db,
        transaction_id=row.id,
        kind=row.kind,
        legs=[(source(requester_id), -amount), (target(requester_id), amount)],
    )


async def reserve(db: WriteDb, *, data: ReservationCreate) -> tuple[LedgerTransactionRead, bool]:
    """Requester available -> reserved, held for the project. Returns (result, replayed)."""
    row, acting = await _record(db, "reservation", data)
    if acting:
        await _add_to_hold(
            db,
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
        )
        await _move(db, row, data, ledger.requester_available, ledger.requester_reserved)
    return transaction_read(row), not acting


async def release(db: WriteDb, *, data: ReleaseCreate) -> tuple[LedgerTransactionRead, bool]:
    """Reserved -> available for slots that will never be paid; 409 if more than held."""
    row, acting = await _record(db, "release", data)
    if not acting:
        return transaction_read(row), True
    left = await repository.release_from_hold(
        db,
        requester_id=data.requester_id,
        project_id=data.project_id,
        amount_cents=data.amount_cents,
    )
    if left is None:
        held = await repository.held_cents(
            db, requester_id=data.requester_id, project_id=data.project_id
        )
        raise ReservationExhausted(
            f"The project's reservation holds {held} cents; cannot release {data.amount_cents}.",
            extra={"held_cents": held, "needed_cents": data.amount_cents},
        )
    await _move(db, row, data, ledger.requester_reserved, ledger.requester_available)
    return transaction_read(row), False


async def total_spent(db: Db, *, requester_id: str) -> int:
    return await repository.total_spent(db, requester_id=requester_id)
