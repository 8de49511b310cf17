"""mturk_questions (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0021_mturk_questions
Revises: 0020_mturk_door
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0021_mturk_questions"
down_revision: str | None = "0020_mturk_door"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
