"""SQL of withdrawals: Core for the CRUD; the payout runner claims due ones with a hand-tuned
`FOR UPDATE SKIP LOCKED` probe (several replicas never pay one withdrawal twice)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, func, insert, select, update

from shared.database import Db, WriteDb, as_row, as_rows
from shared.models.payments import Withdrawal
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    id: str
    worker_id: str
    amount_cents: int
    status: str
    provider_reference: str | None
    created_at: datetime
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class WithdrawnRow:
    total: int
    pending: int


@dataclass(frozen=True, slots=True)
class DueWithdrawalRow:
    id: str
    worker_id: str
    amount_cents: int
    in_flight_account_id: str


_COLUMNS = (
    Withdrawal.id,
    Withdrawal.worker_id,
    Withdrawal.amount_cents,
    Withdrawal.status,
    Withdrawal.provider_reference,
    Withdrawal.created_at,
    Withdrawal.paid_at,
)

# The runner's sweep: the oldest due withdrawal, skipping the rows other runners hold.
CLAIM_DUE_SQL = """
        SELECT id, worker_id, amount_cents, in_flight_account_id FROM withdrawals
        WHERE status = 'pending' AND created_at <= now() - make_interval(secs => $1)
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """


async def insert_withdrawal(
    db: WriteDb,
    *,
    withdrawal_id: str,
    worker_id: str,
    amount_cents: int,
    in_flight_account_id: str,
    request_transaction_id: str,
) -> WithdrawalRow:
    stmt = (
        insert(Withdrawal)
        .values(
            id=withdrawal_id,
            worker_id=worker_id,
            amount_cents=amount_cents,
            in_flight_account_id=in_flight_account_id,
            request_transaction_id=request_transaction_id,
        )
        .returning(*_COLUMNS)
    )
    row = as_row(WithdrawalRow, await db.fetchrow(stmt))
    assert row is not None  # an INSERT without a conflict clause returns its row or raises
    return row


async def list_withdrawals(
    db: Db, *, worker_id: str, before_id: str | None, limit: int
) -> list[WithdrawalRow]:
    stmt = newest_first(
        select(*_COLUMNS).where(Withdrawal.worker_id == worker_id),
        Withdrawal.id,
        before_id=before_id,
        limit=limit,
    )
    return as_rows(WithdrawalRow, await db.fetch(stmt))


async def total_withdrawn(db: Db, *, worker_id: str) -> WithdrawnRow:
    stmt = select(
        func.coalesce(func.sum(Withdrawal.amount_cents), 0).cast(BigInteger).label("total"),
        func.coalesce(func.sum(Withdrawal.amount_cents).filter(Withdrawal.status == "pending"), 0)
        .cast(BigInteger)
        .label("pending"),
    ).where(Withdrawal.worker_id == worker_id)
    row = as_row(WithdrawnRow, await db.fetchrow(stmt))
    assert row is not None  # an aggregate always answers one row
    return row


async def claim_due(db: WriteDb, *, delay_seconds: float) -> DueWithdrawalRow | None:
    """The oldest pending withdrawal that is due, locked; rows other runners hold are skipped,
    so several replicas never pay one withdrawal twice."""
    return as_row(DueWithdrawalRow, await db.fetchrow(CLAIM_DUE_SQL, delay_seconds))


async def mark_paid(
    db: WriteDb,
    *,
    withdrawal_id: str,
    provider_reference: str,
    paid_transaction_id: str,
) -> None:
    stmt = (
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal_id, Withdrawal.status == "pending")
        .values(
            status="paid",
            paid_at=func.now(),
            provider_reference=provider_reference,
            paid_transaction_id=paid_transaction_id,
        )
    )
    await db.execute(stmt)
