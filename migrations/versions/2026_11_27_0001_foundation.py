"""foundation: accounts, api keys, idempotency, projects, tasks, assignments

Revision ID: 0001
Revises:
Create Date: 2026-11-27 18:20:19.753862
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("languages", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('requester', 'worker')", name=op.f("ck_accounts_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(
        "uq_accounts_kind_email",
        "accounts",
        ["kind", sa.literal_column("lower(email)")],
        unique=True,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_idempotency_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("instructions", sa.Text(), server_default="", nullable=False),
        sa.Column("keywords", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("multi_label", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("answer_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reward_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("assignments_per_task", sa.Integer(), server_default="1", nullable=False),
        sa.Column("assignment_duration_seconds", sa.Integer(), nullable=False),
        sa.Column("lifetime_seconds", sa.Integer(), nullable=False),
        sa.Column("auto_approve_seconds", sa.Integer(), nullable=False),
        sa.Column("estimated_seconds_per_assignment", sa.Integer(), nullable=True),
        sa.Column(
            "qualification_requirements",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("min_gold_accuracy", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'paused', 'closed')", name=op.f("ck_projects_status")
        ),
        sa.CheckConstraint(
            "reward_cents >= 0 AND fee_cents >= 0", name=op.f("ck_projects_money_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["accounts.id"], name=op.f("fk_projects_requester_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(
        "ix_projects_published",
        "projects",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'published'"),
    )
    op.create_index("ix_projects_requester_id_id", "projects", ["requester_id", "id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("gold_answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("max_assignments", sa.Integer(), nullable=False),
        sa.Column("open_slots", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'completed', 'expired')", name=op.f("ck_tasks_status")
        ),
        sa.CheckConstraint(
            "max_assignments BETWEEN 1 AND 100", name=op.f("ck_tasks_max_assignments")
        ),
        sa.CheckConstraint(
            "open_slots BETWEEN 0 AND max_assignments", name=op.f("ck_tasks_open_slots")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_tasks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_project_id_id", "tasks", ["project_id", "id"], unique=False)
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="accepted", nullable=False),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("reward_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column(
            "accepted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_approve_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('accepted', 'submitted', 'approved', 'rejected', 'returned', 'expired')",
            name=op.f("ck_assignments_status"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_assignments_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("task_id", "worker_id", name="uq_assignments_task_id_worker_id"),
    )
    op.create_index(
        "ix_assignments_auto_approve_submitted",
        "assignments",
        ["auto_approve_at"],
        unique=False,
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.create_index(
        "ix_assignments_deadline_accepted",
        "assignments",
        ["deadline"],
        unique=False,
        postgresql_where=sa.text("status = 'accepted'"),
    )
    op.create_index("ix_assignments_worker_id_id", "assignments", ["worker_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_assignments_worker_id_id", table_name="assignments")
    op.drop_index(
        "ix_assignments_deadline_accepted",
        table_name="assignments",
        postgresql_where=sa.text("status = 'accepted'"),
    )
    op.drop_index(
        "ix_assignments_auto_approve_submitted",
        table_name="assignments",
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.drop_table("assignments")
    op.drop_index("ix_tasks_project_id_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_projects_requester_id_id", table_name="projects")
    op.drop_index(
        "ix_projects_published",
        table_name="projects",
        postgresql_where=sa.text("status = 'published'"),
    )
    op.drop_table("projects")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("uq_accounts_kind_email", table_name="accounts")
    op.drop_table("accounts")
