"""tasks service: work queue, review, gold stats, outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

The queue side of the tasks service (described by shared/models/gold.py, outbox.py, tasks.py):

- `tasks.claim_rank`: a random integer per task. Accept starts its claim at a random rank, so
  concurrent workers spread over the project's tasks instead of fighting over one queue head,
  and the dead index entries a claim leaves behind are spread thin instead of piling up in front
  of every scan (measured here: a global queue head collapses from ~540 to ~145-300 claims/s).
- `tasks.approved_slots`: slots consumed by approvals paid from the reservation. Row-locked
  `+1` on approve makes "the task is complete" exact under concurrent approvals, which a count
  of assignments in each transaction's snapshot is not. Overrides (rejected → approved, paid from
  available) do not consume a slot and are not counted.
- `ix_tasks_claim`: the claimable tasks of one project in rank order (partial: open with a slot).
- `ix_assignments_project_id_status_id`: the owner's review list, newest first, per status.
- `gold_stats`: per (project, worker): gold answers and correct ones (min_gold_accuracy) plus
  submitted / approved / rejected counts, so the owner's per-worker page is one index range.
- `outbox`: payouts and releases committed with the change that causes them, delivered to the
  payments service afterwards until acknowledged.
- Autovacuum per table: these tables churn (every claim, submit and review updates a row), and
  the default trigger of 20% of a large table comes far too late for the claim index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Room on each heap page for the new row version of an update: HOT updates (approved_slots,
# which no index covers) and non-HOT ones alike stay on the page instead of moving elsewhere.
TASKS_STORAGE = (
    "fillfactor = 85, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,"
    " autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000"
)
ASSIGNMENTS_STORAGE = (
    "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,"
    " autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_limit = 2000"
)
# Counters only, no indexed column changes: every update can be HOT given room on the page.
GOLD_STATS_STORAGE = (
    "fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000"
)
# Small and hot: every row is inserted, updated once or twice and then never touched again.
OUTBOX_STORAGE = (
    "fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 200,"
    " autovacuum_analyze_scale_factor = 0.05"
)


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column(
            "claim_rank",
            sa.Integer(),
            server_default=sa.text("floor(random() * 2147483647)::integer"),
            nullable=False,
        ),
    )
    op.add_column(
        "tasks",
        sa.Column("approved_slots", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        "ck_tasks_approved_slots", "tasks", "approved_slots BETWEEN 0 AND max_assignments"
    )
    op.create_index(
        "ix_tasks_claim",
        "tasks",
        ["project_id", "claim_rank"],
        postgresql_where=sa.text("status = 'open' AND open_slots > 0"),
    )
    op.execute(f"ALTER TABLE tasks SET ({TASKS_STORAGE})")

    op.create_index(
        "ix_assignments_project_id_status_id", "assignments", ["project_id", "status", "id"]
    )
    op.execute(f"ALTER TABLE assignments SET ({ASSIGNMENTS_STORAGE})")

    op.create_table(
        "gold_stats",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("answered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("correct", sa.Integer(), server_default="0", nullable=False),
        sa.Column("submitted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "answered >= 0 AND correct BETWEEN 0 AND answered", name=op.f("ck_gold_stats_gold")
        ),
        sa.CheckConstraint(
            "submitted >= 0 AND approved >= 0 AND rejected >= 0",
            name=op.f("ck_gold_stats_counts"),
        ),
        sa.PrimaryKeyConstraint("project_id", "worker_id", name=op.f("pk_gold_stats")),
    )
    op.execute(f"ALTER TABLE gold_stats SET ({GOLD_STATS_STORAGE})")

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('payout', 'release')", name=op.f("ck_outbox_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    op.create_index(
        "ix_outbox_due",
        "outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL AND parked_at IS NULL"),
    )
    op.execute(f"ALTER TABLE outbox SET ({OUTBOX_STORAGE})")


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("gold_stats")
    op.execute(
        "ALTER TABLE assignments RESET (autovacuum_vacuum_scale_factor,"
        " autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor,"
        " autovacuum_vacuum_cost_limit)"
    )
    op.drop_index("ix_assignments_project_id_status_id", table_name="assignments")
    op.execute(
        "ALTER TABLE tasks RESET (fillfactor, autovacuum_vacuum_scale_factor,"
        " autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor,"
        " autovacuum_vacuum_cost_limit)"
    )
    op.drop_index("ix_tasks_claim", table_name="tasks")
    op.drop_constraint("ck_tasks_approved_slots", "tasks", type_="check")
    op.drop_column("tasks", "approved_slots")
    op.drop_column("tasks", "claim_rank")
