"""work sessions end when their project is paused: the end reason `project_paused`

Revision ID: 0022_session_pause
Revises: 0021_mturk_questions
Create Date: 2026-12-05

Pausing an hourly project ends its open work sessions (nothing accrues while no work can be
taken; the requester's budget does not pay for the pause), with the new `ended_reason`
`project_paused`. Only the CHECK constraint's list of reasons changes; no row does. Downgrade
restores the old list (refused by Postgres if a session ended for this reason exists: rename
those first).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_session_pause"
down_revision: str | None = "0021_mturk_questions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = (
    "('worker', 'idle', 'week_ended', 'weekly_hours_exhausted', 'budget_exhausted', "
    "'project_closed')"
)
_NEW = (
    "('worker', 'idle', 'week_ended', 'weekly_hours_exhausted', 'budget_exhausted', "
    "'project_closed', 'project_paused')"
)


def _reasons(values: str) -> None:
    op.drop_constraint(op.f("ck_work_sessions_ended_reason"), "work_sessions", type_="check")
    op.create_check_constraint(
        op.f("ck_work_sessions_ended_reason"),
        "work_sessions",
        f"ended_reason IS NULL OR ended_reason IN {values}",
    )


def upgrade() -> None:
    _reasons(_NEW)


def downgrade() -> None:
    _reasons(_OLD)
