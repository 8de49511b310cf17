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

`tasks.open_slots` is described by shared/models/tasks.py but 0001 never created it; 0003 adds
it when missing, and so does this revision, guarded the same way, so the schema is right
whichever of the two tasks revisions is authored or reordered first. Downgrading leaves it to 0003.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS open_slots integer")
    op.execute("UPDATE tasks SET open_slots = max_assignments WHERE open_slots IS NULL")
    op.execute("ALTER TABLE tasks ALTER COLUMN open_slots SET NOT NULL")
    op.execute(
        """
        DO $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM pg_constraint
                WHERE conname = 'ck_tasks_open_slots' AND conrelid = 'tasks'::regclass
            ) THEN
                ALTER TABLE tasks ADD CONSTRAINT ck_tasks_open_slots
                    CHECK (open_slots BETWEEN 0 AND max_assignments);
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    # open_slots belongs to 0003's downgrade (it drops the column IF EXISTS).
    pass
