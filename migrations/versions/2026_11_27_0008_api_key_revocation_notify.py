"""api_keys: notify every process when a key is revoked or deleted

Revision ID: 0008_api_key_revocation_notify
Revises: 0007_project_task_expiry
Create Date: 2026-11-27

Each service process caches the API keys it has authenticated (shared.auth.ApiKeyCache). A key's
owner and kind never change; its revocation must reach every process. The trigger sends the
key's id on the `api_key_revoked` channel from the revoking transaction itself, so whatever
revokes a key (the API, an operator's UPDATE, an account deleted with its keys) is reported,
and Postgres delivers the notification only once that transaction commits.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_api_key_revocation_notify"
down_revision: str | None = "0007_project_task_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION notify_api_key_revoked() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('api_key_revoked', OLD.id);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER api_key_revoked
        AFTER UPDATE OF revoked_at, key_hash, account_id OR DELETE ON api_keys
        FOR EACH ROW EXECUTE FUNCTION notify_api_key_revoked()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_key_revoked ON api_keys")
    op.execute("DROP FUNCTION notify_api_key_revoked()")
