"""per-answer pay floor

Revision ID: 0011_pay_floor
Revises: 0010_hourly_work
Create Date: 2026-12-05

PLACEHOLDER: fill in (upgrade and downgrade) and rewrite this docstring.
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0011_pay_floor"
down_revision: str | None = "0010_hourly_work"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
