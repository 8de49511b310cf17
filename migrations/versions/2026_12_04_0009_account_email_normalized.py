"""accounts: e-mail unique per kind after Unicode normalisation; sign-up Idempotency-Key

Revision ID: 0009_account_email_normalized
Revises: 0008_api_key_revocation_notify
Create Date: 2026-12-04

`uq_accounts_kind_email` was `(kind, lower(email))`: `lower()` follows the cluster's locale (in
the C locale it folds ASCII only, so `Élodie@x` and `élodie@x` were two accounts) and knows
nothing of Unicode equivalence (fullwidth `\uff45`, decomposed `é`). Now:

- `accounts.email_normalized` (text COLLATE "C"): NFKC, casefold, NFKC of the address, written
  by the application (shared.models.accounts.normalize_email) and compared bytewise, so the
  unique index `(kind, email_normalized)` means the same on every cluster;
- the old index goes (the new one is stricter: whatever lower() equated, folding equates too,
  for the addresses email-validator accepts).

Existing rows are backfilled here, in Python, with a frozen copy of the rule (a migration must
not change meaning when the application's code does). If two existing accounts of one kind
collide once normalised, the upgrade REFUSES (nothing is changed) and names the account ids:
merging accounts is a decision for an operator (which one keeps the email, what happens to the
other's money and work), not for a migration.

- `signup_idempotency_keys`: the Idempotency-Key store of `POST /v1/accounts`, which has no
  account to scope `idempotency_keys` by (see services/workers/accounts/replay.py).

Downgrade: drops the table and the column and restores the `(kind, lower(email))` index. The
new rule equates at least what the old one did, so the old index fits the data again (on an
exotic locale whose lower() equates more than case folding does, the downgrade would fail and
say which rows collide).
"""

import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_account_email_normalized"
down_revision: str | None = "0008_api_key_revocation_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5_000


def normalize_email(email: str) -> str:
    """Frozen copy of shared.models.accounts.normalize_email as of this revision."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold())


def upgrade() -> None:
    op.add_column("accounts", sa.Column("email_normalized", sa.Text(collation="C")))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, kind, email FROM accounts")).all()
    normalized = {row.id: normalize_email(row.email) for row in rows}
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        owners[(row.kind, normalized[row.id])].append(row.id)
    collisions = [sorted(ids) for ids in owners.values() if len(ids) > 1]
    if collisions:
        shown = "; ".join(", ".join(ids) for ids in collisions[:20])
        raise RuntimeError(
            f"{len(collisions)} group(s) of accounts share an e-mail address once normalised "
            f"(Unicode NFKC + case folding), so (kind, email_normalized) cannot be unique. "
            f"Account ids per group: {shown}"
            f"{' ...' if len(collisions) > 20 else ''}. Merge or change those accounts' "
            f"e-mail addresses, then run the migration again; nothing was changed."
        )
    update = sa.text("UPDATE accounts SET email_normalized = :n WHERE id = :id")
    params = [{"id": account_id, "n": n} for account_id, n in normalized.items()]
    for start in range(0, len(params), _BATCH):
        bind.execute(update, params[start : start + _BATCH])
    op.alter_column("accounts", "email_normalized", nullable=False)
    op.create_index(
        "uq_accounts_kind_email_normalized",
        "accounts",
        ["kind", "email_normalized"],
        unique=True,
    )
    op.drop_index("uq_accounts_kind_email", table_name="accounts")

    op.create_table(
        "signup_idempotency_keys",
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_signup_idempotency_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_digest", name=op.f("pk_signup_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_signup_idempotency_keys_account_id"),
        "signup_idempotency_keys",
        ["account_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_signup_idempotency_keys_account_id"), table_name="signup_idempotency_keys"
    )
    op.drop_table("signup_idempotency_keys")
    op.create_index(
        "uq_accounts_kind_email",
        "accounts",
        ["kind", sa.literal_column("lower(email)")],
        unique=True,
    )
    op.drop_index("uq_accounts_kind_email_normalized", table_name="accounts")
    op.drop_column("accounts", "email_normalized")
