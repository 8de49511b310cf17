"""rate limits shared by replicas

Revision ID: 0012_shared_rate_limits
Revises: 0011_pay_floor
Create Date: 2026-12-05

Rate limits used to be counted in each process's memory, so N replicas allowed N times the
setting. `rate_limit_counters` holds one row per bucket (service, limit, key) and fixed window;
shared.ratelimit leases units of the window's budget (one statement per lease, spent locally)
and the row grows only while the sliding window has room; `granted` is the last lease's size.
UNLOGGED (no WAL: written for every lease of every busy account, not worth a log write nor a
copy on the read replica; a crash only forgives the current window's counts), with room on each
page for HOT updates, and an index on `expires_at` for the prune.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_shared_rate_limits"
down_revision: str | None = "0011_pay_floor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limit_counters (
            bucket text COLLATE "C" NOT NULL,
            window_no bigint NOT NULL,
            hits integer NOT NULL,
            granted integer NOT NULL DEFAULT 0,
            expires_at timestamp with time zone NOT NULL,
            CONSTRAINT pk_rate_limit_counters PRIMARY KEY (bucket, window_no)
        ) WITH (fillfactor = 70)
        """
    )
    op.execute("CREATE INDEX ix_rate_limit_counters_expires_at ON rate_limit_counters (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE rate_limit_counters")
