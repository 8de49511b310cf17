"""payments service: double-entry ledger, project holds, withdrawals

The database guards the ledger, not only the code:
- `ledger_entries` and `ledger_transactions` are append-only (a trigger raises on UPDATE,
  DELETE and TRUNCATE);
- a deferred constraint trigger refuses, at commit, any transaction whose legs do not sum to 0;
- `ledger_accounts.balance_cents` (the cached balance) has a CHECK that only the outside world
  (`external`) may go below zero, the last line of defence against an overdraft.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNT_KINDS = (
    "requester_available",
    "requester_reserved",
    "worker_available",
    "platform_revenue",
    "payouts_in_flight",
    "external",
)
TRANSACTION_KINDS = (
    "deposit",
    "reservation",
    "release",
    "payout",
    "bonus",
    "withdrawal",
    "withdrawal_paid",
)


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("balance_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(f"kind IN {ACCOUNT_KINDS!r}", name=op.f("ck_ledger_accounts_kind")),
        sa.CheckConstraint(
            "kind = 'external' OR balance_cents >= 0",
            name=op.f("ck_ledger_accounts_nonnegative"),
        ),
        sa.CheckConstraint(
            "(owner_id IS NULL) = (kind IN ('platform_revenue', 'payouts_in_flight', 'external'))",
            name=op.f("ck_ledger_accounts_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name=op.f("fk_ledger_accounts_owner_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
    )
    op.create_index("ix_ledger_accounts_owner_id", "ledger_accounts", ["owner_id"])

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("requester_id", sa.String(length=64), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("assignment_id", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            f"kind IN {TRANSACTION_KINDS!r}", name=op.f("ck_ledger_transactions_kind")
        ),
        sa.CheckConstraint(
            "amount_cents >= 0 AND fee_cents >= 0",
            name=op.f("ck_ledger_transactions_money_nonnegative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_transactions_key")),
    )
    op.create_index(
        "uq_ledger_transactions_payout_assignment_id",
        "ledger_transactions",
        ["assignment_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'payout'"),
    )
    op.create_index(
        "ix_ledger_transactions_requester_id_id", "ledger_transactions", ["requester_id", "id"]
    )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("amount_cents <> 0", name=op.f("ck_ledger_entries_nonzero")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_entries_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"])
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])

    op.create_table(
        "project_holds",
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("held_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved_total_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("released_total_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("spent_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("held_cents >= 0", name=op.f("ck_project_holds_held_nonnegative")),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["accounts.id"], name=op.f("fk_project_holds_requester_id_accounts")
        ),
        sa.PrimaryKeyConstraint("requester_id", "project_id", name=op.f("pk_project_holds")),
    )
    op.create_index("ix_project_holds_project_id", "project_holds", ["project_id"])

    op.create_table(
        "withdrawals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("in_flight_account_id", sa.String(length=100), nullable=False),
        sa.Column("request_transaction_id", sa.String(length=64), nullable=False),
        sa.Column("paid_transaction_id", sa.String(length=64), nullable=True),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'paid')", name=op.f("ck_withdrawals_status")),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_withdrawals_amount_positive")),
        sa.CheckConstraint(
            "(status = 'paid') = (paid_at IS NOT NULL)", name=op.f("ck_withdrawals_paid_at")
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["accounts.id"], name=op.f("fk_withdrawals_worker_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
    )
    op.create_index("ix_withdrawals_worker_id_id", "withdrawals", ["worker_id", "id"])
    op.create_index(
        "ix_withdrawals_pending",
        "withdrawals",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    # Append-only: history is corrected by a new transaction, never by editing an old one.
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    for table in ("ledger_entries", "ledger_transactions"):
        op.execute(
            f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
            """
        )

    # Double entry, enforced at commit: every leg of a transaction has been written by then, so
    # the check sees the whole transaction (django-hordak's idea).
    op.execute(
        """
        CREATE FUNCTION ledger_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            total numeric;
        BEGIN
            SELECT sum(amount_cents) INTO total
            FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
            IF total IS DISTINCT FROM 0 THEN
                RAISE EXCEPTION 'ledger transaction % does not balance: legs sum to %',
                    NEW.transaction_id, total
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER ledger_entries_balanced
        AFTER INSERT ON ledger_entries
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction_balanced()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_balanced ON ledger_entries")
    for table in ("ledger_entries", "ledger_transactions"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ledger_check_transaction_balanced()")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    op.drop_index("ix_withdrawals_pending", table_name="withdrawals")
    op.drop_index("ix_withdrawals_worker_id_id", table_name="withdrawals")
    op.drop_table("withdrawals")
    op.drop_index("ix_project_holds_project_id", table_name="project_holds")
    op.drop_table("project_holds")
    op.drop_index("ix_ledger_entries_transaction_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_id_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_ledger_transactions_requester_id_id", table_name="ledger_transactions")
    op.drop_index("uq_ledger_transactions_payout_assignment_id", table_name="ledger_transactions")
    op.drop_table("ledger_transactions")
    op.drop_index("ix_ledger_accounts_owner_id", table_name="ledger_accounts")
    op.drop_table("ledger_accounts")
