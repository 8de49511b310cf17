"""Money for the tasks service's slots: reserve, release, and the holds payouts draw on (paying
an approved assignment is payouts.service's: the payout rules have one home there).

Each call acts at most once per `key` (see ledger.service.record): a retry after a timeout
answers the first result and moves nothing. Lock order, the same for every call that touches a
hold: the transaction's key, then the hold row, then the ledger accounts (sorted by id), so
concurrent calls cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """A ledger transaction row as the internal calls answer it (also for payouts)."""
    details = ledger.parse_details(row.details)
    return LedgerTransactionRead(
        transaction_id=row.id,
        key=row.key,
        kind=row.kind,
        requester_id=row.requester_id,
        worker_id=row.worker_id,
        project_id=row.project_id,
        task_id=row.task_id,
        assignment_id=row.assignment_id,
        amount_cents=row.amount_cents,
        fee_cents=row.fee_cents,
        source=details.get("source"),
        created_at=row.created_at,
    )


async def _add_to_hold(
    db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    try:
        await repository.add_to_hold(
            db, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == HOLD_REQUESTER_FK:
            raise ledger.AccountNotFound("No such requester account.") from exc
        raise


async def count_spent(
    db: WriteDb, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    """Count money paid out of `available` on a project's behalf (overrides, bonuses) in the
    project's `spent`."""
    try:
        await repository.add_spent(
            db, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == HOLD_REQUESTER_FK:
            raise ledger.AccountNotFound("No such requester account.") from exc
        raise


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


async def reserve(db: WriteDb, *, data: ReservationCreate) -> tuple[LedgerTransactionRead, bool]:
    """Requester available -> reserved, held for the project. Returns (result, replayed)."""
    row, acting = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="reservation",
            key=data.key,
            request_hash=ledger.request_hash("reservation", data.model_dump(mode="json")),
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
            reference=f"project:{data.project_id}",
        ),
    )
    if acting:
        await _add_to_hold(
            db,
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
        )
        await ledger.move(
            db,
            transaction_id=row.id,
            kind="reservation",
            legs=[
                (ledger.requester_available(data.requester_id), -data.amount_cents),
                (ledger.requester_reserved(data.requester_id), data.amount_cents),
            ],
        )
    return transaction_read(row), not acting


async def release(db: WriteDb, *, data: ReleaseCreate) -> tuple[LedgerTransactionRead, bool]:
    """Reserved -> available for slots that will never be paid; 409 if more than held."""
    row, acting = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="release",
            key=data.key,
            request_hash=ledger.request_hash("release", data.model_dump(mode="json")),
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
            reference=f"project:{data.project_id}",
        ),
    )
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
    await ledger.move(
        db,
        transaction_id=row.id,
        kind="release",
        legs=[
            (ledger.requester_reserved(data.requester_id), -data.amount_cents),
            (ledger.requester_available(data.requester_id), data.amount_cents),
        ],
    )
    return transaction_read(row), False


async def total_spent(db: Db, *, requester_id: str) -> int:
    return await repository.total_spent(db, requester_id=requester_id)
