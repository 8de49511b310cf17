"""training: projects that train workers and grant a qualification (services/tasks/training/)

Revision ID: 0017_training
Revises: 0016_pay_tiers
Create Date: 2026-12-05

- `projects.training_qualification_type_id`, `min_training_answers`, `pass_accuracy`: a
  training project's link to one of its requester's qualification types and its pass rule; set
  exactly when `kind = 'training'` (CHECK), and a training project is paid per answer.
- `tasks.explanation`: why the gold answer is right, shown to the worker after their own submit
  of a training task.
- `training_progress`: one row per (training project, worker): the current attempt, its
  answers and correct answers, and the outcome (`passed`, or `failed` with the time a retry is
  allowed). Submits of one worker are decided on this row under its lock, so a pass (and its
  grant) happens once.
- `outbox.kind` gains 'grant': the qualification grant of a pass, delivered to the workers
  service after the commit like a payout (`grant:training:{project}:{worker}`).

Every column added is nullable or has a constant default: metadata-only in Postgres 11+.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_training"
down_revision: str | None = "0016_pay_tiers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("projects", sa.Column("training_qualification_type_id", sa.String(64)))
    op.add_column("projects", sa.Column("min_training_answers", sa.Integer()))
    op.add_column("projects", sa.Column("pass_accuracy", sa.Integer()))
    op.create_check_constraint(
        op.f("ck_projects_training"),
        "projects",
        "(kind = 'training') = (training_qualification_type_id IS NOT NULL) "
        "AND (kind = 'training') = (min_training_answers IS NOT NULL) "
        "AND (kind = 'training') = (pass_accuracy IS NOT NULL) "
        "AND (kind = 'standard' OR pay_model = 'per_assignment')",
    )
    op.create_check_constraint(
        op.f("ck_projects_training_rule"),
        "projects",
        "min_training_answers BETWEEN 1 AND 1000 AND pass_accuracy BETWEEN 0 AND 100",
    )
    op.add_column("tasks", sa.Column("explanation", sa.Text()))
    op.create_table(
        "training_progress",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("status", sa.String(16), nullable=False, server_default="in_progress"),
        sa.Column("answered", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("correct", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("decided_at", _TS),
        sa.Column("retry_at", _TS),
        sa.Column("granted_value", sa.Integer()),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "status IN ('in_progress', 'passed', 'failed')",
            name=op.f("ck_training_progress_status"),
        ),
        sa.CheckConstraint(
            "attempt >= 1 AND answered >= 0 AND correct BETWEEN 0 AND answered",
            name=op.f("ck_training_progress_counts"),
        ),
        sa.CheckConstraint(
            "(status = 'passed') = (granted_value IS NOT NULL)",
            name=op.f("ck_training_progress_granted"),
        ),
        sa.PrimaryKeyConstraint("project_id", "worker_id", name=op.f("pk_training_progress")),
    )
    op.drop_constraint(op.f("ck_outbox_kind"), "outbox", type_="check")
    op.create_check_constraint(
        op.f("ck_outbox_kind"), "outbox", "kind IN ('payout', 'release', 'top_up', 'grant')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE kind = 'grant'")
    op.drop_constraint(op.f("ck_outbox_kind"), "outbox", type_="check")
    op.create_check_constraint(
        op.f("ck_outbox_kind"), "outbox", "kind IN ('payout', 'release', 'top_up')"
    )
    op.drop_table("training_progress")
    op.drop_column("tasks", "explanation")
    op.drop_constraint(op.f("ck_projects_training_rule"), "projects", type_="check")
    op.drop_constraint(op.f("ck_projects_training"), "projects", type_="check")
    op.drop_column("projects", "pass_accuracy")
    op.drop_column("projects", "min_training_answers")
    op.drop_column("projects", "training_qualification_type_id")
