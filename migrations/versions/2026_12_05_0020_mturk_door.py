"""mturk_door (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0020_mturk_door
Revises: 0019_mturk_native
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0020_mturk_door"
down_revision: str | None = "0019_mturk_native"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
