"""pay_tiers (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0016_pay_tiers
Revises: 0015_levels
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0016_pay_tiers"
down_revision: str | None = "0015_levels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
