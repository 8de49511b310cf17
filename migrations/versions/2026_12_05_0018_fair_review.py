"""fair_review (placeholder: filled by the helper who owns it; describe what it adds here)

Revision ID: 0018_fair_review
Revises: 0017_training
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0018_fair_review"
down_revision: str | None = "0017_training"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
