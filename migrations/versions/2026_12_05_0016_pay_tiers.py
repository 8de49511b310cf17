"""pay tiers: a reward (or hourly rate) per worker level, fixed when the work is taken

Revision ID: 0016_pay_tiers
Revises: 0015_levels
Create Date: 2026-12-05

- `projects.reward_by_level` (per-answer projects): the tiers as the requester set them, cents
  per level key ("1".."3"); NULL: one reward for every level. `level_reward_cents` and
  `level_fee_cents` are the same tiers resolved for levels 0..3 (array index level + 1), with
  the fee of each tier by the fee rule: what accept writes into the assignment, read with one
  array subscript in accept's existing statement.
- `projects.slot_cents` (generated): what one slot holds in the reservation, the highest tier's
  reward + fee (level 3's entry: tiers never decrease with the level), or reward + fee without
  tiers. Every place that reserves or releases a slot's money reads it.
- `projects.hourly_rate_by_level` / `level_hourly_rate_cents` (hourly projects): the same for
  the hourly rate; `work_sessions.hourly_rate_cents` is the rate fixed when the session opened
  (existing sessions: their project's rate, which they were paid at).

The generated column is the one table rewrite (projects: one row per project).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016_pay_tiers"
down_revision: str | None = "0015_levels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOT_CENTS = "coalesce(level_reward_cents[4] + level_fee_cents[4], reward_cents + fee_cents)"


def upgrade() -> None:
    op.add_column("projects", sa.Column("reward_by_level", postgresql.JSONB(), nullable=True))
    op.add_column(
        "projects", sa.Column("level_reward_cents", sa.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.add_column(
        "projects", sa.Column("level_fee_cents", sa.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.add_column(
        "projects",
        sa.Column(
            "slot_cents", sa.BigInteger(), sa.Computed(SLOT_CENTS, persisted=True), nullable=True
        ),
    )
    op.add_column("projects", sa.Column("hourly_rate_by_level", postgresql.JSONB(), nullable=True))
    op.add_column(
        "projects",
        sa.Column("level_hourly_rate_cents", sa.ARRAY(sa.BigInteger()), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_projects_reward_tiers"),
        "projects",
        "(reward_by_level IS NULL) = (level_reward_cents IS NULL) "
        "AND (level_reward_cents IS NULL) = (level_fee_cents IS NULL) "
        "AND (level_reward_cents IS NULL OR (pay_model = 'per_assignment' "
        "AND cardinality(level_reward_cents) = 4 AND cardinality(level_fee_cents) = 4))",
    )
    op.create_check_constraint(
        op.f("ck_projects_hourly_rate_tiers"),
        "projects",
        "(hourly_rate_by_level IS NULL) = (level_hourly_rate_cents IS NULL) "
        "AND (level_hourly_rate_cents IS NULL OR (pay_model = 'hourly' "
        "AND cardinality(level_hourly_rate_cents) = 4))",
    )
    op.add_column("work_sessions", sa.Column("hourly_rate_cents", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE work_sessions s SET hourly_rate_cents = p.hourly_rate_cents "
        "FROM projects p WHERE p.id = s.project_id"
    )
    op.alter_column("work_sessions", "hourly_rate_cents", nullable=False)


def downgrade() -> None:
    op.drop_column("work_sessions", "hourly_rate_cents")
    op.drop_constraint(op.f("ck_projects_hourly_rate_tiers"), "projects", type_="check")
    op.drop_constraint(op.f("ck_projects_reward_tiers"), "projects", type_="check")
    for column in (
        "level_hourly_rate_cents",
        "hourly_rate_by_level",
        "slot_cents",
        "level_fee_cents",
        "level_reward_cents",
        "reward_by_level",
    ):
        op.drop_column("projects", column)
