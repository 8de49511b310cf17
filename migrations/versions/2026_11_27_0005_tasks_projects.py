"""tasks service: projects, task upload, results

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

The projects side needs no table of its own: projects, tasks and assignments (0001) hold
everything it writes, and the indexes it reads through already exist — `ix_projects_published`
(discovery's newest-first scan), `ix_tasks_claim` from 0003 (claimable tasks per project, for
`available_tasks` and the preview sample), `ix_tasks_project_id_id` (task lists, results export),
`ix_assignments_project_id_status_id` from 0003 (working times, requester review stats) and
`gold_stats` from 0003 (min_gold_accuracy). Adding more indexes to `tasks` or `assignments`
would tax every accept and review, the hot paths, for reads that are cached or rare.
"""

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
