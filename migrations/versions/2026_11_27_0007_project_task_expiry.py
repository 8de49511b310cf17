"""tasks service: publish writes the project row only (the project's tasks inherit its expiry)

Revision ID: 0007_project_task_expiry
Revises: 0006
Create Date: 2026-11-27

Publishing used to write every task of the project (`expires_at`, `open_slots`): ~16 s for a
1,000,000-task project, a dead tuple per task and a new entry per task in every index, which
autovacuum then works off while claims run slower (bench/RESULTS.md, proposal 7). Now:

- `projects.tasks_expire_at`: published_at + lifetime_seconds, written by publish. Tasks
  uploaded into a draft keep `tasks.expires_at` NULL, meaning "the project's"; tasks uploaded
  into a live project still get their own expiry (their upload + lifetime).
- `projects.tasks_expiry_swept_at`: when the lifetime sweep found none of the project's
  inheriting tasks open any more.
- `ix_projects_tasks_expiry (tasks_expire_at)`, partial on projects the sweep still has to look
  at, and `ix_tasks_inherited_expiry_open (project_id)`, partial on open tasks with NULL
  `expires_at`: the sweep's way to a due project's tasks (`ix_tasks_expires_open` keeps serving
  the tasks with their own expiry; every open task is in exactly one of the two).

Existing rows: every task of a published project already has its own `expires_at` (publish wrote
it), so those projects get `tasks_expire_at` for display and are marked swept at once; nothing
inherits there. Drafts keep NULL in both columns. The downgrade writes the inherited expiry back
into the tasks, as the old publish did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_project_task_expiry"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("tasks_expire_at", sa.DateTime(timezone=True)))
    op.add_column("projects", sa.Column("tasks_expiry_swept_at", sa.DateTime(timezone=True)))
    op.execute(
        """
        UPDATE projects p
        SET tasks_expire_at = p.published_at + make_interval(secs => p.lifetime_seconds),
            tasks_expiry_swept_at = CASE
                WHEN EXISTS (
                    SELECT 1 FROM tasks t
                    WHERE t.project_id = p.id AND t.status = 'open' AND t.expires_at IS NULL
                ) THEN NULL
                ELSE now()
            END
        WHERE p.published_at IS NOT NULL
        """
    )
    op.create_index(
        "ix_projects_tasks_expiry",
        "projects",
        ["tasks_expire_at"],
        postgresql_where=sa.text("tasks_expire_at IS NOT NULL AND tasks_expiry_swept_at IS NULL"),
    )
    op.create_index(
        "ix_tasks_inherited_expiry_open",
        "tasks",
        ["project_id"],
        postgresql_where=sa.text("status = 'open' AND expires_at IS NULL"),
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE tasks t SET expires_at = p.tasks_expire_at
        FROM projects p
        WHERE p.id = t.project_id AND t.expires_at IS NULL AND p.tasks_expire_at IS NOT NULL
        """
    )
    op.drop_index("ix_tasks_inherited_expiry_open", table_name="tasks")
    op.drop_index("ix_projects_tasks_expiry", table_name="projects")
    op.drop_column("projects", "tasks_expiry_swept_at")
    op.drop_column("projects", "tasks_expire_at")
