"""training (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0017_training
Revises: 0016_pay_tiers
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0017_training"
down_revision: str | None = "0016_pay_tiers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
