"""levels: the worker ladder's bookkeeping, per-answer gold grading, the system.level type

Revision ID: 0015_levels
Revises: 0014_standing_contract
Create Date: 2026-12-05

The platform ladder (services/workers/levels/): level 0 entry .. 3 expert, from thresholds over
the worker's measured history.
- `assignments.gold_correct`: the submit's grading of a gold answer (true/false; NULL for an
  answer to a task without a gold answer). `gold_stats` keeps per-project totals only, and the
  ladder judges the worker's last 200 gold answers across projects. Answers submitted before
  this migration are not graded per answer (NULL): their grading was never stored, and the
  tasks service's rules (label sets, normalised text, box overlap) are Python, so SQL cannot
  redo it.
- Two partial indexes, so a worker's figures read bounded index ranges and never the worker's
  whole history: `ix_assignments_worker_decided` (the last 1,000 decided answers that count,
  newest review first, status included for an index-only count) and `ix_assignments_worker_gold`
  (the last 200 counted gold answers, newest submission first). Answers with
  `standing_excluded` are outside both predicates: they never count.
- `worker_levels` gains the grace period's state: `below_since` (the first recompute that found
  the worker below its level's thresholds, NULL when not) and `fall_at` (below_since + the
  grace period: when the level falls if nothing improves), and `checked_at` (last recompute).
- `worker_level_changes`: the history (one row per rise or fall, with the figures decided on).
- `worker_tests_passed`: one row per worker and qualification type whose test the worker passed
  (a test attempt granted with a value above 0, or a training project's pass): the ladder's
  "tests passed" figure is a count of the worker's rows. Backfilled from the granted test
  attempts.
- `worker_level_queue`: workers whose figures may have changed (the stats compaction adds the
  workers it folded deltas for, a passed qualification test adds its worker); the levels loop
  drains it with SKIP LOCKED, so several processes share the work.
- The `system.level` system qualification type; every worker that has stats or a passed test
  is queued, so the first loop gives existing workers their level.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_levels"
down_revision: str | None = "0014_standing_contract"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(64)
_TS = sa.DateTime(timezone=True)

LEVEL_TYPE = (
    "00000000000000000LV0",
    "system.level",
    "The worker's platform level: 0 entry, 1 intermediate, 2 advanced, 3 expert (GET /v1/levels "
    "lists each level's thresholds).",
    ["level", "system"],
)


def upgrade() -> None:
    op.add_column("assignments", sa.Column("gold_correct", sa.Boolean()))
    op.create_index(
        "ix_assignments_worker_decided",
        "assignments",
        ["worker_id", "reviewed_at", "id"],
        postgresql_include=["status"],
        postgresql_where=sa.text("status IN ('approved', 'rejected') AND NOT standing_excluded"),
    )
    op.create_index(
        "ix_assignments_worker_gold",
        "assignments",
        ["worker_id", "submitted_at", "id"],
        postgresql_include=["gold_correct"],
        postgresql_where=sa.text("gold_correct IS NOT NULL AND NOT standing_excluded"),
    )
    op.add_column("worker_levels", sa.Column("below_since", _TS))
    op.add_column("worker_levels", sa.Column("fall_at", _TS))
    op.add_column("worker_levels", sa.Column("checked_at", _TS))
    op.create_check_constraint(
        op.f("ck_worker_levels_grace"),
        "worker_levels",
        "(below_since IS NULL) = (fall_at IS NULL)",
    )
    op.create_index(
        "ix_worker_levels_fall_at",
        "worker_levels",
        ["fall_at"],
        postgresql_where=sa.text("fall_at IS NOT NULL"),
    )
    op.create_table(
        "worker_level_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("from_level", sa.SmallInteger(), nullable=False),
        sa.Column("to_level", sa.SmallInteger(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(
            "from_level BETWEEN 0 AND 3 AND to_level BETWEEN 0 AND 3 AND from_level <> to_level",
            name=op.f("ck_worker_level_changes_levels"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_level_changes")),
    )
    op.create_index(
        "ix_worker_level_changes_worker_id_id", "worker_level_changes", ["worker_id", "id"]
    )
    op.create_table(
        "worker_tests_passed",
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("qualification_type_id", _ID, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("passed_at", _TS, nullable=False),
        sa.CheckConstraint("via IN ('test', 'training')", name=op.f("ck_worker_tests_passed_via")),
        sa.PrimaryKeyConstraint(
            "worker_id", "qualification_type_id", name=op.f("pk_worker_tests_passed")
        ),
    )
    op.execute(
        """INSERT INTO worker_tests_passed (worker_id, qualification_type_id, via, passed_at)
           SELECT DISTINCT ON (worker_id, qualification_type_id)
                  worker_id, qualification_type_id, 'test',
                  coalesce(reviewed_at, submitted_at, started_at)
           FROM qualification_attempts
           WHERE status = 'granted' AND value > 0
             AND questions IS NOT NULL AND questions <> '[]'::jsonb
           ORDER BY worker_id, qualification_type_id, started_at"""
    )
    op.create_table(
        "worker_level_queue",
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("queued_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_level_queue")),
    )
    types = sa.table(
        "qualification_types",
        sa.column("id", sa.String),
        sa.column("owner_id", sa.String),
        sa.column("name", sa.Text),
        sa.column("description", sa.Text),
        sa.column("keywords", sa.ARRAY(sa.Text())),
        sa.column("status", sa.String),
        sa.column("is_system", sa.Boolean),
    )
    type_id, name, description, keywords = LEVEL_TYPE
    op.bulk_insert(
        types,
        [
            {
                "id": type_id,
                "owner_id": None,
                "name": name,
                "description": description,
                "keywords": keywords,
                "status": "active",
                "is_system": True,
            }
        ],
    )
    op.execute(
        "INSERT INTO worker_level_queue (worker_id) SELECT worker_id FROM worker_stats "
        "UNION SELECT worker_id FROM worker_tests_passed ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM qualification_types WHERE id = '{LEVEL_TYPE[0]}'")
    op.drop_table("worker_level_queue")
    op.drop_table("worker_tests_passed")
    op.drop_index("ix_worker_level_changes_worker_id_id", table_name="worker_level_changes")
    op.drop_table("worker_level_changes")
    op.drop_index("ix_worker_levels_fall_at", table_name="worker_levels")
    op.drop_constraint(op.f("ck_worker_levels_grace"), "worker_levels", type_="check")
    op.drop_column("worker_levels", "checked_at")
    op.drop_column("worker_levels", "fall_at")
    op.drop_column("worker_levels", "below_since")
    op.drop_index("ix_assignments_worker_gold", table_name="assignments")
    op.drop_index("ix_assignments_worker_decided", table_name="assignments")
    op.drop_column("assignments", "gold_correct")
