"""levels (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0015_levels
Revises: 0014_standing_contract
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0015_levels"
down_revision: str | None = "0014_standing_contract"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
