"""per-answer pay floor: projects.min_hourly_rate_cents, pay_floors, settlements, settled answers

Revision ID: 0011_pay_floor
Revises: 0010_hourly_work
Create Date: 2026-12-05

A per-answer project may set `min_hourly_rate_cents`; publishing it writes a `pay_floors` row
(the floor's terms and the money of its worst case), the settlement sweep writes one
`pay_floor_settlements` row per project and period (ISO week, UTC; unique) and one
`pay_floor_answers` row per approved answer it covered (keyed by the assignment). See
shared/models/pay_floor.py. New tables and a nullable column: nothing to backfill. The outbox
takes a third kind of message, `top_up` (a settlement's top-up of one answer).
`requester_scorecards` holds the discovery scorecard per requester, precomputed by a sweep
(shared/models/scorecards.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_pay_floor"
down_revision: str | None = "0010_hourly_work"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(64)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The pay floor's top-ups travel through the outbox as their own kind.
    op.drop_constraint(op.f("ck_outbox_kind"), "outbox", type_="check")
    op.create_check_constraint(
        op.f("ck_outbox_kind"), "outbox", "kind IN ('payout', 'release', 'top_up')"
    )
    op.add_column("projects", sa.Column("min_hourly_rate_cents", sa.BigInteger()))
    op.create_check_constraint(
        op.f("ck_projects_min_hourly_rate"),
        "projects",
        "min_hourly_rate_cents IS NULL OR (min_hourly_rate_cents > 0 "
        "AND pay_model = 'per_assignment')",
    )
    op.create_table(
        "pay_floors",
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("requester_id", _ID, nullable=False),
        sa.Column("min_hourly_rate_cents", sa.BigInteger(), nullable=False),
        sa.Column("reward_cents", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("worst_top_up_cents", sa.BigInteger(), nullable=False),
        sa.Column("worst_fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("reserved_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("released_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("next_settlement_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "min_hourly_rate_cents > 0 AND reward_cents > 0 AND duration_seconds > 0 "
            "AND worst_top_up_cents >= 0 AND worst_fee_cents >= 0",
            name=op.f("ck_pay_floors_terms"),
        ),
        sa.CheckConstraint(
            "reserved_cents >= 0 AND paid_cents >= 0 AND released_cents >= 0 "
            "AND released_cents <= reserved_cents",
            name=op.f("ck_pay_floors_money"),
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_pay_floors")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_pay_floors_project_id_projects")
        ),
    )
    op.create_index(
        "ix_pay_floors_due",
        "pay_floors",
        ["next_settlement_at"],
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.create_table(
        "pay_floor_settlements",
        sa.Column("id", _ID, nullable=False),
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("median_seconds", sa.Numeric(14, 3), nullable=False),
        sa.Column("top_up_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("released_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("final", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("settled_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "extract(isodow FROM period_start) = 1",
            name=op.f("ck_pay_floor_settlements_period_start_monday"),
        ),
        sa.CheckConstraint(
            "answers > 0 AND top_up_cents >= 0 AND fee_cents >= 0 AND paid_cents >= 0 "
            "AND released_cents >= 0",
            name=op.f("ck_pay_floor_settlements_nonnegative"),
        ),
        sa.UniqueConstraint(
            "project_id", "period_start", name=op.f("uq_pay_floor_settlements_project_period")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pay_floor_settlements")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["pay_floors.project_id"],
            name=op.f("fk_pay_floor_settlements_project_id_pay_floors"),
        ),
    )
    op.create_table(
        "pay_floor_answers",
        sa.Column("assignment_id", _ID, nullable=False),
        sa.Column("settlement_id", _ID, nullable=False),
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("worker_id", _ID, nullable=False),
        sa.Column("top_up_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "source IN ('reserved', 'available')", name=op.f("ck_pay_floor_answers_source")
        ),
        sa.CheckConstraint(
            "top_up_cents >= 0 AND fee_cents >= 0", name=op.f("ck_pay_floor_answers_nonnegative")
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_pay_floor_answers")),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_pay_floor_answers_assignment_id_assignments"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["pay_floor_settlements.id"],
            name=op.f("fk_pay_floor_answers_settlement_id_pay_floor_settlements"),
        ),
    )
    op.create_index("ix_pay_floor_answers_settlement_id", "pay_floor_answers", ["settlement_id"])
    op.create_table(
        "requester_scorecards",
        sa.Column("requester_id", _ID, nullable=False),
        sa.Column("approved", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("median_review_seconds", sa.Float()),
        sa.Column("effective_hourly_cents", sa.BigInteger()),
        sa.Column("rated_answers", sa.BigInteger(), nullable=False),
        sa.Column("timesheets_reviewed", sa.Integer(), nullable=False),
        sa.Column("timesheets_disputed", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("requester_id", name=op.f("pk_requester_scorecards")),
    )
    op.create_index(
        "ix_requester_scorecards_refreshed_at", "requester_scorecards", ["refreshed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_requester_scorecards_refreshed_at", table_name="requester_scorecards")
    op.drop_table("requester_scorecards")
    op.drop_index("ix_pay_floor_answers_settlement_id", table_name="pay_floor_answers")
    op.drop_table("pay_floor_answers")
    op.drop_table("pay_floor_settlements")
    op.drop_index("ix_pay_floors_due", table_name="pay_floors")
    op.drop_table("pay_floors")
    op.drop_constraint(op.f("ck_projects_min_hourly_rate"), "projects", type_="check")
    op.drop_column("projects", "min_hourly_rate_cents")
    op.execute("DELETE FROM outbox WHERE kind = 'top_up'")
    op.drop_constraint(op.f("ck_outbox_kind"), "outbox", type_="check")
    op.create_check_constraint(op.f("ck_outbox_kind"), "outbox", "kind IN ('payout', 'release')")
