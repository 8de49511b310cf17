"""Money for the tasks service's slots: reserve, pay an approved assignment, release.

Each call acts at most once per `key` (see ledger.service.record): a retry after a timeout
answers the first result and moves nothing. Lock order, the same for every call that touches a
hold: the transaction's key, then the hold row, then the ledger accounts (sorted by id), so
concurrent calls cannot deadlock.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.ledger import service as ledger
from services.payments.reservations import repository
from services.payments.reservations.schemas import (
    LedgerTransactionRead,
    PayoutCreate,
    ReleaseCreate,
    ReservationCreate,
)
from services.payments.settings import Settings
from shared.db import driver_connection
from shared.errors import Conflict

HOLD_REQUESTER_FK = "fk_project_holds_requester_id_accounts"


class ReservationExhausted(Conflict):
    """The project's hold is smaller than asked: a bookkeeping bug upstream, never expected."""

    code = "reservation_exhausted"


class AlreadyPaid(Conflict):
    code = "already_paid"


def transaction_read(row: asyncpg.Record) -> LedgerTransactionRead:
    """A ledger transaction row as the internal calls answer it (also for batched payouts)."""
    details = ledger.parse_details(row["details"])
    return LedgerTransactionRead(
        transaction_id=row["id"],
        key=row["key"],
        kind=row["kind"],
        requester_id=row["requester_id"],
        worker_id=row["worker_id"],
        project_id=row["project_id"],
        task_id=row["task_id"],
        assignment_id=row["assignment_id"],
        amount_cents=row["amount_cents"],
        fee_cents=row["fee_cents"],
        source=details.get("source"),
        created_at=row["created_at"],
    )


async def _add_to_hold(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    try:
        await repository.add_to_hold(
            conn, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == HOLD_REQUESTER_FK:
            raise ledger.AccountNotFound("No such requester account.") from exc
        raise


async def count_spent(
    conn: asyncpg.Connection, *, requester_id: str, project_id: str, amount_cents: int
) -> None:
    """Count money paid out of `available` on a project's behalf (overrides, bonuses) in the
    project's `spent`."""
    try:
        await repository.add_spent(
            conn, requester_id=requester_id, project_id=project_id, amount_cents=amount_cents
        )
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == HOLD_REQUESTER_FK:
            raise ledger.AccountNotFound("No such requester account.") from exc
        raise


async def _draw_hold(conn: asyncpg.Connection, *, data: PayoutCreate, total: int) -> None:
    """Take a payout out of the project's hold; 409 when the hold is missing or short. A zero
    payout (a zero reward has no fee) needs no hold at all."""
    if total == 0:
        return
    left = await repository.draw_from_hold_for_payment(
        conn, requester_id=data.requester_id, project_id=data.project_id, amount_cents=total
    )
    if left is None:
        held = await repository.held_cents(
            conn, requester_id=data.requester_id, project_id=data.project_id
        )
        raise ReservationExhausted(
            f"The project's reservation holds {held} cents; this payout needs {total}.",
            extra={"held_cents": held, "needed_cents": total},
        )


async def reserve(
    session: AsyncSession, *, data: ReservationCreate
) -> tuple[LedgerTransactionRead, bool]:
    """Requester available -> reserved, held for the project. Returns (result, replayed)."""
    conn = await driver_connection(session)
    row, acting = await ledger.record(
        conn,
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
            conn,
            requester_id=data.requester_id,
            project_id=data.project_id,
            amount_cents=data.amount_cents,
        )
        await ledger.move(
            conn,
            transaction_id=row["id"],
            kind="reservation",
            legs=[
                (ledger.requester_available(data.requester_id), -data.amount_cents),
                (ledger.requester_reserved(data.requester_id), data.amount_cents),
            ],
        )
    return transaction_read(row), not acting


async def pay(
    session: AsyncSession, *, data: PayoutCreate, settings: Settings
) -> tuple[LedgerTransactionRead, bool]:
    """Pay an approved assignment: reward to the worker, fee to the platform.

    From the project's hold (`reserved`; 409 reservation_exhausted when it is short) or, for an
    override of a rejected assignment, from the requester's available balance (402 if short).
    An assignment is paid at most once whatever the key (a unique index; 409 already_paid).
    """
    conn = await driver_connection(session)
    total = data.reward_cents + data.fee_cents
    try:
        row, acting = await ledger.record(
            conn,
            ledger.NewTransaction(
                kind="payout",
                key=data.key,
                request_hash=ledger.request_hash("payout", data.model_dump(mode="json")),
                requester_id=data.requester_id,
                worker_id=data.worker_id,
                project_id=data.project_id,
                task_id=data.task_id,
                assignment_id=data.assignment_id,
                amount_cents=data.reward_cents,
                fee_cents=data.fee_cents,
                reference=f"assignment:{data.assignment_id}",
                details={"source": data.source},
            ),
        )
    except ledger.ConflictingTransaction as exc:
        # The only other unique index: one payout per assignment
        # (uq_ledger_transactions_payout_assignment_id).
        raise AlreadyPaid(
            f"Assignment {data.assignment_id} was already paid under another key."
        ) from exc
    if not acting:
        return transaction_read(row), True
    if data.source == "reserved":
        source_account = ledger.requester_reserved(data.requester_id)
        await _draw_hold(conn, data=data, total=total)
    else:
        source_account = ledger.requester_available(data.requester_id)
        await count_spent(
            conn, requester_id=data.requester_id, project_id=data.project_id, amount_cents=total
        )
    await ledger.move(
        conn,
        transaction_id=row["id"],
        kind="payout",
        legs=[
            (source_account, -total),
            (ledger.worker_available(data.worker_id), data.reward_cents),
            (
                ledger.platform_revenue(ledger.pick_shard(settings.platform_account_shards)),
                data.fee_cents,
            ),
        ],
    )
    return transaction_read(row), False


async def release(
    session: AsyncSession, *, data: ReleaseCreate
) -> tuple[LedgerTransactionRead, bool]:
    """Reserved -> available for slots that will never be paid; 409 if more than held."""
    conn = await driver_connection(session)
    row, acting = await ledger.record(
        conn,
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
        conn,
        requester_id=data.requester_id,
        project_id=data.project_id,
        amount_cents=data.amount_cents,
    )
    if left is None:
        held = await repository.held_cents(
            conn, requester_id=data.requester_id, project_id=data.project_id
        )
        raise ReservationExhausted(
            f"The project's reservation holds {held} cents; cannot release {data.amount_cents}.",
            extra={"held_cents": held, "needed_cents": data.amount_cents},
        )
    await ledger.move(
        conn,
        transaction_id=row["id"],
        kind="release",
        legs=[
            (ledger.requester_reserved(data.requester_id), -data.amount_cents),
            (ledger.requester_available(data.requester_id), data.amount_cents),
        ],
    )
    return transaction_read(row), False


async def total_spent(conn: asyncpg.Connection, *, requester_id: str) -> int:
    return await repository.total_spent(conn, requester_id=requester_id)
