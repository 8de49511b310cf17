"""The double-entry ledger, per-project holds and withdrawals (owner: payments service).

Read by the tasks service for a project's `money {reserved, spent}` (`project_holds`). The
database itself guards the ledger (migration 0004): entries and transactions are append-only
(a trigger refuses UPDATE/DELETE/TRUNCATE), every transaction's legs sum to zero (a deferred
constraint trigger checked at commit), and no account but the outside world goes negative (a
CHECK on the cached balance).

Sign convention: an entry's `amount_cents` is positive when money flows *into* the account
(a credit, raising its balance) and negative when it flows out (a debit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column

LEDGER_ACCOUNT_KINDS = (
    "requester_available",
    "requester_reserved",
    "worker_available",
    "platform_revenue",
    "payouts_in_flight",
    "external",
)
"""`external` is the outside world: deposits come from it (it goes negative), paid
withdrawals go to it. It is the only kind allowed below zero."""

LEDGER_TRANSACTION_KINDS = (
    "deposit",
    "reservation",
    "release",
    "payout",
    "bonus",
    "withdrawal",
    "withdrawal_paid",
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    # Deterministic ids ("requester:<id>:available", "platform:revenue:3", ...), so a leg can be
    # posted without first looking the account up, and accounts are created on first use.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    owner_id: Mapped[str | None] = id_column(ForeignKey("accounts.id"))
    # Cache of the sum of this account's entries, updated in the same statement that writes them;
    # GET /internal/ledger/check recomputes it from the entries.
    balance_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint(f"kind IN {LEDGER_ACCOUNT_KINDS!r}", name="kind"),
        CheckConstraint("kind = 'external' OR balance_cents >= 0", name="nonnegative"),
        CheckConstraint(
            "(owner_id IS NULL) = (kind IN ('platform_revenue', 'payouts_in_flight', 'external'))",
            name="owner",
        ),
        Index("ix_ledger_accounts_owner_id", "owner_id"),
    )


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[str] = id_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # The business event's key (internal calls: "pay:<assignment_id>", ...): unique, so a retry
    # or a concurrent duplicate can never act twice. Public calls use the Idempotency-Key table.
    key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    requester_id: Mapped[str | None] = id_column()
    worker_id: Mapped[str | None] = id_column()
    project_id: Mapped[str | None] = id_column()
    task_id: Mapped[str | None] = id_column()
    assignment_id: Mapped[str | None] = id_column()
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    reference: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint(f"kind IN {LEDGER_TRANSACTION_KINDS!r}", name="kind"),
        CheckConstraint("amount_cents >= 0 AND fee_cents >= 0", name="money_nonnegative"),
        # Each approved assignment pays its worker exactly once, whatever key the caller used.
        Index(
            "uq_ledger_transactions_payout_assignment_id",
            "assignment_id",
            unique=True,
            postgresql_where=text("kind = 'payout'"),
        ),
        Index("ix_ledger_transactions_requester_id_id", "requester_id", "id"),
    )


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    # An identity, not a ULID: per account, entry ids grow in the order the balance row's lock
    # was taken, so `balance_after` reads in id order like a bank statement.
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    transaction_id: Mapped[str] = id_column(ForeignKey("ledger_transactions.id"), nullable=False)
    account_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("ledger_accounts.id"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # the transaction's kind
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balance_after_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="nonzero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        Index("ix_ledger_entries_transaction_id", "transaction_id"),
    )


class ProjectHold(Base):
    """Money held for a project's unpaid, unreleased slots; `reserved` of a requester is the sum."""

    __tablename__ = "project_holds"

    requester_id: Mapped[str] = id_column(ForeignKey("accounts.id"), primary_key=True)
    project_id: Mapped[str] = id_column(primary_key=True)
    held_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    reserved_total_cents: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    released_total_cents: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    # Rewards + fees paid for this project's assignments (from the hold or, for overrides, from
    # available) and bonuses on them: the project's `money.spent`.
    spent_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("held_cents >= 0", name="held_nonnegative"),
        Index("ix_project_holds_project_id", "project_id"),
    )


class Withdrawal(Base):
    __tablename__ = "withdrawals"

    id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(ForeignKey("accounts.id"), nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    in_flight_account_id: Mapped[str] = mapped_column(String(100), nullable=False)
    request_transaction_id: Mapped[str] = id_column(nullable=False)
    paid_transaction_id: Mapped[str | None] = id_column()
    provider_reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    paid_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'paid')", name="status"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name="paid_at"),
        Index("ix_withdrawals_worker_id_id", "worker_id", "id"),
        Index("ix_withdrawals_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )
