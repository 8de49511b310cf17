"""worker standing: project kind, answers excluded from standing, worker levels

Revision ID: 0014_standing_contract
Revises: 0013_aggregation
Create Date: 2026-12-05

The columns that levels, training and fair review share (issue: levels, training, appeals):
- `projects.kind`: 'standard' (paid work, today's projects) or 'training' (practice work that
  grants a qualification; services/tasks/training/).
- `assignments.standing_excluded`: the answer does not count toward the worker's standing
  (approval rate, approved count, level figures): training answers, and rejections beyond the
  daily per-requester cap. Defaults to false: every existing answer counts, as it did.
- `worker_levels`: the worker's current platform level (0-3) and since when (the rest of the
  ladder's bookkeeping is added by 0015_levels).

Adding a column with a constant default is metadata-only in Postgres 11+: no table rewrite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_standing_contract"
down_revision: str | None = "0013_aggregation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "projects", sa.Column("kind", sa.String(16), nullable=False, server_default="standard")
    )
    op.create_check_constraint(
        op.f("ck_projects_kind"), "projects", "kind IN ('standard', 'training')"
    )
    op.add_column(
        "assignments",
        sa.Column("standing_excluded", sa.Boolean(), nullable=False, server_default="false"),
    )
    op.create_table(
        "worker_levels",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("since", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("level BETWEEN 0 AND 3", name=op.f("ck_worker_levels_level")),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_levels")),
    )


def downgrade() -> None:
    op.drop_table("worker_levels")
    op.drop_column("assignments", "standing_excluded")
    op.drop_constraint(op.f("ck_projects_kind"), "projects", type_="check")
    op.drop_column("projects", "kind")
