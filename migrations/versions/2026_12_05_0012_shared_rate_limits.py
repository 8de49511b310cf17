"""rate limits shared by replicas

Revision ID: 0012_shared_rate_limits
Revises: 0009_account_email_normalized
Create Date: 2026-12-05

PLACEHOLDER: fill in (upgrade and downgrade) and rewrite this docstring.
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0012_shared_rate_limits"
down_revision: str | None = "0009_account_email_normalized"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
