"""fair review: appeals, the daily rejection cap, the scorecard's review figures

Revision ID: 0018_fair_review
Revises: 0017_training
Create Date: 2026-12-05

- `appeals` (shared/models/appeals.py): one appeal per rejected assignment, open until the
  requester overturns or upholds it.
- `daily_rejection_counts`: rejections per (requester, worker, UTC day); the reject statement
  adds to it and flags the rejections beyond the cap `standing_excluded`. Backfilled from the
  rejections already given (by their review day), so the scorecard's "rejections given" starts
  from the real history; no past rejection is flagged.
- `requester_scorecards` gains `rejections_given`, `appeals_received`, `appeals_overturned`.
- The worker stats trigger (`worker_stats_track_assignment`, migration 0002) counts nothing of a
  `standing_excluded` assignment, and its update trigger also fires when the flag flips, so a
  flip on a decided row moves the counters by exactly that row. Rows already flagged (training
  answers written before this revision) were counted by the old function: their counts are taken
  out here, in the same transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_fair_review"
down_revision: str | None = "0017_training"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(64)
_TS = sa.DateTime(timezone=True)


def _stats_function(*, standing: bool) -> str:
    """The trigger function: each changed assignment adds (new indicators - old indicators) for
    its worker. `standing`: an assignment with standing_excluded has no indicators (this
    revision); without it, the function of 0002."""
    old_guard = " AND NOT OLD.standing_excluded" if standing else ""
    new_guard = " AND NOT NEW.standing_excluded" if standing else ""
    return f"""
CREATE OR REPLACE FUNCTION worker_stats_track_assignment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_s int := 0; old_a int := 0; old_r int := 0;
    new_s int := 0; new_a int := 0; new_r int := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE'){old_guard} THEN
        old_s := (OLD.status IN ('submitted', 'approved', 'rejected'))::int;
        old_a := (OLD.status = 'approved')::int;
        old_r := (OLD.status = 'rejected')::int;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE'){new_guard} THEN
        new_s := (NEW.status IN ('submitted', 'approved', 'rejected'))::int;
        new_a := (NEW.status = 'approved')::int;
        new_r := (NEW.status = 'rejected')::int;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.worker_id = NEW.worker_id THEN
        IF new_s <> old_s OR new_a <> old_a OR new_r <> old_r THEN
            INSERT INTO worker_stats_deltas (worker_id, submitted, approved, rejected)
            VALUES (NEW.worker_id, new_s - old_s, new_a - old_a, new_r - old_r);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND (old_s + old_a + old_r) > 0 THEN
        INSERT INTO worker_stats_deltas (worker_id, submitted, approved, rejected)
        VALUES (OLD.worker_id, -old_s, -old_a, -old_r);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (new_s + new_a + new_r) > 0 THEN
        INSERT INTO worker_stats_deltas (worker_id, submitted, approved, rejected)
        VALUES (NEW.worker_id, new_s, new_a, new_r);
    END IF;
    RETURN NULL;
END
$$
"""


def _update_trigger(*, standing: bool) -> str:
    columns = "status, worker_id, standing_excluded" if standing else "status, worker_id"
    flag = " OR OLD.standing_excluded IS DISTINCT FROM NEW.standing_excluded" if standing else ""
    return f"""CREATE TRIGGER assignments_worker_stats_update AFTER UPDATE OF {columns}
        ON assignments FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.worker_id IS DISTINCT FROM NEW.worker_id{flag})
        EXECUTE FUNCTION worker_stats_track_assignment()"""


# What the old function counted of the flagged rows, taken out (sign -1) or put back (+1).
_FLAGGED_COUNTS = """
INSERT INTO worker_stats_deltas (worker_id, submitted, approved, rejected)
SELECT worker_id,
       {sign} * count(*) FILTER (WHERE status IN ('submitted', 'approved', 'rejected')),
       {sign} * count(*) FILTER (WHERE status = 'approved'),
       {sign} * count(*) FILTER (WHERE status = 'rejected')
FROM assignments
WHERE standing_excluded AND status IN ('submitted', 'approved', 'rejected')
GROUP BY worker_id
"""


def upgrade() -> None:
    op.create_table(
        "appeals",
        sa.Column("id", _ID, nullable=False),
        sa.Column("assignment_id", _ID, nullable=False),
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("requester_id", _ID, nullable=False),
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'overturned', 'upheld')", name=op.f("ck_appeals_status")
        ),
        sa.CheckConstraint(
            "(status = 'open') = (decided_at IS NULL)", name=op.f("ck_appeals_decided_at")
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_appeals_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_appeals_assignment_id")),
    )
    op.create_index("ix_appeals_requester_id_id", "appeals", ["requester_id", "id"])
    op.create_index("ix_appeals_project_id_id", "appeals", ["project_id", "id"])
    op.create_index("ix_appeals_worker_id_id", "appeals", ["worker_id", "id"])

    op.create_table(
        "daily_rejection_counts",
        sa.Column("requester_id", _ID, nullable=False),
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rejections", sa.Integer(), nullable=False),
        sa.CheckConstraint("rejections > 0", name=op.f("ck_daily_rejection_counts_rejections")),
        sa.PrimaryKeyConstraint(
            "requester_id", "worker_id", "day", name=op.f("pk_daily_rejection_counts")
        ),
    )
    op.execute(
        """
        INSERT INTO daily_rejection_counts (requester_id, worker_id, day, rejections)
        SELECT requester_id, worker_id, (reviewed_at AT TIME ZONE 'UTC')::date, count(*)
        FROM assignments
        WHERE status = 'rejected' AND reviewed_at IS NOT NULL
        GROUP BY 1, 2, 3
        """
    )

    for column in ("rejections_given", "appeals_received", "appeals_overturned"):
        op.add_column(
            "requester_scorecards",
            sa.Column(column, sa.BigInteger(), server_default="0", nullable=False),
        )

    op.execute(_FLAGGED_COUNTS.format(sign=-1))
    op.execute(_stats_function(standing=True))
    op.execute("DROP TRIGGER assignments_worker_stats_update ON assignments")
    op.execute(_update_trigger(standing=True))


def downgrade() -> None:
    op.execute("DROP TRIGGER assignments_worker_stats_update ON assignments")
    op.execute(_update_trigger(standing=False))
    op.execute(_stats_function(standing=False))
    op.execute(_FLAGGED_COUNTS.format(sign=1))
    for column in ("appeals_overturned", "appeals_received", "rejections_given"):
        op.drop_column("requester_scorecards", column)
    op.drop_table("daily_rejection_counts")
    op.drop_index("ix_appeals_worker_id_id", table_name="appeals")
    op.drop_index("ix_appeals_project_id_id", table_name="appeals")
    op.drop_index("ix_appeals_requester_id_id", table_name="appeals")
    op.drop_table("appeals")
