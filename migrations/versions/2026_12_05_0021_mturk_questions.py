"""mturk_questions: a qualification type keeps the MTurk XML it was created from

Revision ID: 0021_mturk_questions
Revises: 0020_mturk_door
Create Date: 2026-12-05

A qualification type created through the MTurk door (CreateQualificationType) has its test
converted into the native test and answer key (`test`, `answer_key`: scored natively by the
attempts API); GetQualificationType must still answer the `Test` and `AnswerKey` documents the
requester gave, byte for byte, so they are kept beside the native form:

- `qualification_types.mturk_test`: the QuestionForm XML, or NULL;
- `qualification_types.mturk_answer_key`: the AnswerKey XML, or NULL.

Only with a native test (a changed native test or answer key clears them: the XML would no
longer describe it). Answer keys gained scored options and the scale and range mappings inside
the existing JSONB column (no schema change for those).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_mturk_questions"
down_revision: str | None = "0020_mturk_door"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("qualification_types", sa.Column("mturk_test", sa.Text(), nullable=True))
    op.add_column("qualification_types", sa.Column("mturk_answer_key", sa.Text(), nullable=True))
    op.create_check_constraint(
        "mturk_test_needs_test",
        "qualification_types",
        "mturk_test IS NULL OR test IS NOT NULL",
    )
    op.create_check_constraint(
        "mturk_answer_key_needs_answer_key",
        "qualification_types",
        "mturk_answer_key IS NULL OR answer_key IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_constraint("mturk_answer_key_needs_answer_key", "qualification_types", type_="check")
    op.drop_constraint("mturk_test_needs_test", "qualification_types", type_="check")
    op.drop_column("qualification_types", "mturk_answer_key")
    op.drop_column("qualification_types", "mturk_test")
