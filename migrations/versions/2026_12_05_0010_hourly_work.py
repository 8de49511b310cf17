"""hourly projects: work sessions, timesheets, the per-project budget counter

Revision ID: 0010_hourly_work
Revises: 0009_account_email_normalized
Create Date: 2026-12-05

- `projects.pay_model` ('per_assignment', the default and every existing project, or 'hourly')
  and the hourly columns: `hourly_rate_cents`, `max_seconds_per_worker_per_week` (NULL: no cap),
  `budget_seconds`, `idle_timeout_seconds`. `ck_projects_hourly_fields`: an hourly project has
  a positive rate, budget and idle timeout and no per-answer reward.
- `work_sessions`, `timesheets`, `hourly_budgets` (shared/models/hourly.py says what each is),
  the two first with a fillfactor below 100 so a heartbeat's update stays HOT.
  The names and the timesheet columns `project_id`, `worker_id`, `week_start`,
  `seconds_worked`, `status`, `disputed_at`, `approved_at`, `paid_cents` are read by the
  scorecard and the earnings (migration 0011's branch).

Existing rows: every project stays per-assignment; the new tables start empty. The downgrade
drops the tables and columns (hourly projects' history goes with them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_hourly_work"
down_revision: str | None = "0009_account_email_normalized"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def _created_at() -> sa.Column:
    return _timestamp("created_at", server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column(
            "pay_model", sa.String(length=16), server_default="per_assignment", nullable=False
        ),
    )
    op.add_column("projects", sa.Column("hourly_rate_cents", sa.BigInteger()))
    op.add_column("projects", sa.Column("max_seconds_per_worker_per_week", sa.Integer()))
    op.add_column("projects", sa.Column("budget_seconds", sa.BigInteger()))
    op.add_column("projects", sa.Column("idle_timeout_seconds", sa.Integer()))
    op.create_check_constraint("pay_model", "projects", "pay_model IN ('per_assignment', 'hourly')")
    op.create_check_constraint(
        "hourly_fields",
        "projects",
        "pay_model = 'per_assignment' OR (hourly_rate_cents > 0 AND budget_seconds > 0 "
        "AND idle_timeout_seconds > 0 AND reward_cents = 0)",
    )

    op.create_table(
        "hourly_budgets",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("budget_seconds", sa.BigInteger(), nullable=False),
        sa.Column("used_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("released_cents", sa.BigInteger(), server_default="0", nullable=False),
        _timestamp("exhausted_at"),
        _created_at(),
        sa.CheckConstraint(
            "paid_cents >= 0 AND released_cents >= 0 "
            "AND paid_cents + released_cents <= reserved_cents",
            name=op.f("ck_hourly_budgets_within_reservation"),
        ),
        sa.CheckConstraint(
            "used_seconds >= 0 AND used_seconds <= budget_seconds",
            name=op.f("ck_hourly_budgets_within_budget"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_hourly_budgets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_hourly_budgets")),
    )

    op.create_table(
        "timesheets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("seconds_worked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sessions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        _timestamp("auto_approve_at", nullable=False),
        _timestamp("disputed_at"),
        _timestamp("approved_at"),
        sa.Column("approved_by", sa.String(length=16)),
        sa.Column("paid_seconds", sa.Integer()),
        sa.Column("paid_cents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), server_default="0", nullable=False),
        _created_at(),
        _timestamp("updated_at", server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(status = 'approved') = (approved_at IS NOT NULL AND paid_seconds IS NOT NULL)",
            name=op.f("ck_timesheets_approved"),
        ),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by IN ('requester', 'auto')",
            name=op.f("ck_timesheets_approved_by"),
        ),
        sa.CheckConstraint("status IN ('open', 'approved')", name=op.f("ck_timesheets_status")),
        sa.CheckConstraint(
            "extract(isodow FROM week_start) = 1", name=op.f("ck_timesheets_week_start_monday")
        ),
        sa.CheckConstraint(
            "seconds_worked >= 0 AND paid_cents >= 0 AND fee_cents >= 0",
            name=op.f("ck_timesheets_nonnegative"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_timesheets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timesheets")),
        sa.UniqueConstraint(
            "project_id", "worker_id", "week_start", name="uq_timesheets_project_worker_week"
        ),
    )
    op.create_index(
        "ix_timesheets_auto_approve_open",
        "timesheets",
        ["auto_approve_at"],
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_timesheets_project_id_id", "timesheets", ["project_id", "id"])
    op.create_index("ix_timesheets_worker_id_id", "timesheets", ["worker_id", "id"])

    op.create_table(
        "work_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("timesheet_id", sa.String(length=64), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        _timestamp("started_at", nullable=False),
        _timestamp("last_activity_at", nullable=False),
        _timestamp("expires_at", nullable=False),
        _timestamp("ended_at"),
        sa.Column("ended_reason", sa.String(length=32)),
        sa.Column("seconds_worked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("activity_events", sa.Integer(), server_default="1", nullable=False),
        sa.Column("dispute_status", sa.String(length=16)),
        sa.Column("dispute_reason", sa.Text()),
        _timestamp("disputed_at"),
        sa.Column("dispute_response", sa.Text()),
        _timestamp("responded_at"),
        _timestamp("dispute_resolved_at"),
        _created_at(),
        sa.CheckConstraint(
            "(status = 'ended') = (ended_at IS NOT NULL AND ended_reason IS NOT NULL)",
            name=op.f("ck_work_sessions_ended"),
        ),
        sa.CheckConstraint(
            "dispute_status IS NULL OR dispute_status IN ('open', 'withdrawn', 'upheld')",
            name=op.f("ck_work_sessions_dispute_status"),
        ),
        sa.CheckConstraint(
            "ended_reason IS NULL OR ended_reason IN ('worker', 'idle', 'week_ended', "
            "'weekly_hours_exhausted', 'budget_exhausted', 'project_closed')",
            name=op.f("ck_work_sessions_ended_reason"),
        ),
        sa.CheckConstraint("status IN ('open', 'ended')", name=op.f("ck_work_sessions_status")),
        sa.CheckConstraint(
            "seconds_worked >= 0", name=op.f("ck_work_sessions_seconds_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_work_sessions_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["timesheet_id"],
            ["timesheets.id"],
            name=op.f("fk_work_sessions_timesheet_id_timesheets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_sessions")),
    )
    # Heartbeats update sessions (and timesheets) in place: HOT updates need room on the page.
    op.execute("ALTER TABLE work_sessions SET (fillfactor = 70)")
    op.execute("ALTER TABLE timesheets SET (fillfactor = 80)")
    op.create_index("ix_work_sessions_timesheet_id_id", "work_sessions", ["timesheet_id", "id"])
    op.create_index("ix_work_sessions_worker_id_id", "work_sessions", ["worker_id", "id"])
    op.create_index(
        "uq_work_sessions_open",
        "work_sessions",
        ["project_id", "worker_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("work_sessions")
    op.drop_table("timesheets")
    op.drop_table("hourly_budgets")
    op.drop_constraint("hourly_fields", "projects", type_="check")
    op.drop_constraint("pay_model", "projects", type_="check")
    for column in (
        "idle_timeout_seconds",
        "budget_seconds",
        "max_seconds_per_worker_per_week",
        "hourly_rate_cents",
        "pay_model",
    ):
        op.drop_column("projects", column)
