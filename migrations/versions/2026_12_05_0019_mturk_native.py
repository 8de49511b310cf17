"""mturk_native (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0019_mturk_native
Revises: 0013_aggregation
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0019_mturk_native"
down_revision: str | None = "0013_aggregation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
