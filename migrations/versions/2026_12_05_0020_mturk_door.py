"""mturk_door: MTurk credentials, UniqueRequestTokens and invocation replays for the door

Revision ID: 0020_mturk_door
Revises: 0019_mturk_native
Create Date: 2026-12-05

- `mturk_credentials`: MTurk-style access keys of requester accounts (workers service issues
  and revokes them; the tasks service's door reads them to verify SigV4). The secret is stored
  AES-GCM encrypted (SigV4 needs the plaintext, so a hash would not do). A trigger notifies
  `mturk_credential_revoked` with the access key id from the revoking transaction, as 0008 does
  for API keys, so every process drops its cached copy.
- `mturk_request_tokens`: `UniqueRequestToken`s for 24 hours, per requester and scope.
- `mturk_invocations`: the first response to a write by `amz-sdk-invocation-id`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_mturk_door"
down_revision: str | None = "0019_mturk_native"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mturk_credentials",
        sa.Column("access_key_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_mturk_credentials_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("access_key_id", name="pk_mturk_credentials"),
    )
    op.create_index(
        "ix_mturk_credentials_account_id", "mturk_credentials", ["account_id"], unique=False
    )
    op.create_table(
        "mturk_request_tokens",
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["accounts.id"],
            name="fk_mturk_request_tokens_requester_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("requester_id", "scope", "token", name="pk_mturk_request_tokens"),
    )
    op.create_index(
        "ix_mturk_request_tokens_created_at", "mturk_request_tokens", ["created_at"], unique=False
    )
    op.create_table(
        "mturk_invocations",
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("invocation_id", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["accounts.id"],
            name="fk_mturk_invocations_requester_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("requester_id", "invocation_id", name="pk_mturk_invocations"),
    )
    op.create_index(
        "ix_mturk_invocations_created_at", "mturk_invocations", ["created_at"], unique=False
    )
    op.execute(
        """
        CREATE FUNCTION notify_mturk_credential_revoked() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mturk_credential_revoked', OLD.access_key_id);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER mturk_credential_revoked
        AFTER UPDATE OF revoked_at, secret_ciphertext, account_id OR DELETE ON mturk_credentials
        FOR EACH ROW EXECUTE FUNCTION notify_mturk_credential_revoked()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER mturk_credential_revoked ON mturk_credentials")
    op.execute("DROP FUNCTION notify_mturk_credential_revoked()")
    op.drop_index("ix_mturk_invocations_created_at", table_name="mturk_invocations")
    op.drop_table("mturk_invocations")
    op.drop_index("ix_mturk_request_tokens_created_at", table_name="mturk_request_tokens")
    op.drop_table("mturk_request_tokens")
    op.drop_index("ix_mturk_credentials_account_id", table_name="mturk_credentials")
    op.drop_table("mturk_credentials")
