"""aggregation runs: crowd-kit results cached per project, method and answers watermark

Revision ID: 0013_aggregation
Revises: 0012_shared_rate_limits
Create Date: 2026-12-05

- `aggregation_runs`: one crowd-kit method applied to one project's answers as of a watermark
  (status running/done/failed, stage and progress for the status endpoint, a lease so that a
  run whose process died is taken over); unique per (project, method, watermark).
- `aggregation_task_results`: the aggregate answer, confidence and agreement per task of a run.
- `aggregation_worker_skills`: the method's skill estimate per worker of a run.

New tables only: nothing to backfill (a run is computed on the first request that asks for it).
Downgrade drops the three tables (cached results only; nothing else refers to them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_aggregation"
down_revision: str | None = "0012_shared_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aggregation_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("stage", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("task_count", sa.Integer(), nullable=True),
        sa.Column("answer_count", sa.Integer(), nullable=True),
        sa.Column("worker_count", sa.Integer(), nullable=True),
        sa.Column("compute_seconds", sa.Float(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_aggregation_runs_status")
        ),
        sa.CheckConstraint(
            "stage IN ('queued', 'loading', 'aggregating', 'storing', 'done', 'failed')",
            name=op.f("ck_aggregation_runs_stage"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 1", name=op.f("ck_aggregation_runs_progress")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_aggregation_runs_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregation_runs")),
        sa.UniqueConstraint(
            "project_id", "method", "watermark", name=op.f("uq_aggregation_runs_key")
        ),
    )
    op.create_index(
        "ix_aggregation_runs_project_id_method",
        "aggregation_runs",
        ["project_id", "method", "created_at"],
        unique=False,
    )
    op.create_table(
        "aggregation_task_results",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("agreement", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["aggregation_runs.id"],
            name=op.f("fk_aggregation_task_results_run_id_aggregation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "task_id", name=op.f("pk_aggregation_task_results")),
    )
    op.create_table(
        "aggregation_worker_skills",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("skill", sa.Float(), nullable=True),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["aggregation_runs.id"],
            name=op.f("fk_aggregation_worker_skills_run_id_aggregation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "worker_id", name=op.f("pk_aggregation_worker_skills")),
    )


def downgrade() -> None:
    op.drop_table("aggregation_worker_skills")
    op.drop_table("aggregation_task_results")
    op.drop_index("ix_aggregation_runs_project_id_method", table_name="aggregation_runs")
    op.drop_table("aggregation_runs")
