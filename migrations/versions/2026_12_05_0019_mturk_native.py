"""what the native API gains for the MTurk view: task expiry changes, disposal, worker messages

Revision ID: 0019_mturk_native
Revises: 0018_fair_review
Create Date: 2026-12-05

- `tasks.reopened_count` (default 0): how many times a task came back after expiring (its
  expiry set into the future again, `PATCH /v1/tasks/{id}`, MTurk's UpdateExpirationForHIT). A
  task expires at most once per value, so every release key of an expiry carries it and names
  one event (a task that expires twice releases its money twice, under two keys).
- `tasks.disposed_at`: the owner disposed of the task (`POST /v1/tasks/{id}/dispose`, MTurk's
  DeleteHIT): out of the task lists, row, answers and ledger history kept. Added without a
  default: no table rewrite.
- `worker_messages`: a requester's message to a worker it has worked with
  (`POST /v1/workers/messages`, MTurk's NotifyWorkers), one row per recipient, with the
  worker's inbox index (newest first) and its unread twin.

Additional assignments need no column: `tasks.max_assignments` and `open_slots` grow together
(the CHECK `max_assignments BETWEEN 1 AND 100` stays: the native cap on a task's answers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_mturk_native"
down_revision: str | None = "0018_fair_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_check_constraint(op.f("ck_tasks_reopened_count"), "tasks", "reopened_count >= 0")
    op.add_column("tasks", sa.Column("disposed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "worker_messages",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("send_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "char_length(subject) BETWEEN 1 AND 200",
            name=op.f("ck_worker_messages_subject_length"),
        ),
        sa.CheckConstraint(
            "char_length(body) BETWEEN 1 AND 4096", name=op.f("ck_worker_messages_body_length")
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["accounts.id"],
            name=op.f("fk_worker_messages_worker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["accounts.id"],
            name=op.f("fk_worker_messages_requester_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_messages")),
    )
    op.create_index("ix_worker_messages_worker_id_id", "worker_messages", ["worker_id", "id"])
    op.create_index(
        "ix_worker_messages_unread",
        "worker_messages",
        ["worker_id", "id"],
        postgresql_where=sa.text("read_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("worker_messages")
    op.drop_column("tasks", "disposed_at")
    op.drop_constraint(op.f("ck_tasks_reopened_count"), "tasks", type_="check")
    op.drop_column("tasks", "reopened_count")
