"""workers service tables: profiles, qualification types, attempts, grants, blocks

Also the worker stats counters, kept exact by a trigger on `assignments` (see
shared/models/workers.py: WorkerStats, WorkerStatsDelta), and the three system qualification types
with their fixed MTurk-style ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")

SYSTEM_TYPES = (
    (
        "000000000000000000L0",
        "system.approval_rate",
        "Percentage (0-100, rounded down) of the worker's decided assignments that were approved; "
        "100 until the worker has 10 decided (approved or rejected) assignments.",
        ["approval", "rate", "system"],
    ),
    (
        "00000000000000000040",
        "system.approved_count",
        "Number of the worker's assignments that were approved.",
        ["approved", "count", "system"],
    ),
    (
        "00000000000000000071",
        "system.country",
        "The worker's country from its profile, an ISO 3166-1 alpha-2 code; compare with eq, ne, "
        "in, not_in, exists or not_exists.",
        ["country", "location", "system"],
    ),
)

# Each changed assignment adds (new indicators - old indicators) for its worker; a row counts as
# submitted once it reached submitted (submitted, approved or rejected).
_STATS_FUNCTION = """
CREATE FUNCTION worker_stats_track_assignment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_s int := 0; old_a int := 0; old_r int := 0;
    new_s int := 0; new_a int := 0; new_r int := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_s := (OLD.status IN ('submitted', 'approved', 'rejected'))::int;
        old_a := (OLD.status = 'approved')::int;
        old_r := (OLD.status = 'rejected')::int;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
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

_STATS_TRUNCATE_FUNCTION = """
CREATE FUNCTION worker_stats_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE worker_stats, worker_stats_deltas;
    RETURN NULL;
END
$$
"""

_DECIDED = "('submitted', 'approved', 'rejected')"
_TRIGGERS = (
    # Accept inserts 'accepted' rows: the WHEN clause keeps the accept hot path trigger-free.
    f"""CREATE TRIGGER assignments_worker_stats_insert AFTER INSERT ON assignments
        FOR EACH ROW WHEN (NEW.status IN {_DECIDED})
        EXECUTE FUNCTION worker_stats_track_assignment()""",
    """CREATE TRIGGER assignments_worker_stats_update AFTER UPDATE OF status, worker_id
        ON assignments FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.worker_id IS DISTINCT FROM NEW.worker_id)
        EXECUTE FUNCTION worker_stats_track_assignment()""",
    f"""CREATE TRIGGER assignments_worker_stats_delete AFTER DELETE ON assignments
        FOR EACH ROW WHEN (OLD.status IN {_DECIDED})
        EXECUTE FUNCTION worker_stats_track_assignment()""",
    """CREATE TRIGGER assignments_worker_stats_truncate AFTER TRUNCATE ON assignments
        FOR EACH STATEMENT EXECUTE FUNCTION worker_stats_reset()""",
)


def upgrade() -> None:
    # Trigram index for substring search of qualification type names (trusted extension).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "worker_profiles",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("languages", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("skills", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("bio", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["accounts.id"],
            name=op.f("fk_worker_profiles_worker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_profiles")),
    )

    op.create_table(
        "worker_stats",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("submitted_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("approved_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_stats")),
    )
    op.create_table(
        "worker_stats_deltas",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("approved", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_stats_deltas")),
    )
    op.create_index("ix_worker_stats_deltas_worker_id", "worker_stats_deltas", ["worker_id"])

    op.create_table(
        "qualification_types",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("keywords", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("test", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("answer_key", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("retry_delay_seconds", sa.Integer(), nullable=True),
        sa.Column("auto_grant", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("auto_grant_value", sa.Integer(), server_default="1", nullable=False),
        sa.Column("is_system", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'inactive')", name=op.f("ck_qualification_types_status")
        ),
        sa.CheckConstraint(
            "NOT (auto_grant AND test IS NOT NULL)",
            name=op.f("ck_qualification_types_auto_grant_has_no_test"),
        ),
        sa.CheckConstraint(
            "answer_key IS NULL OR test IS NOT NULL",
            name=op.f("ck_qualification_types_answer_key_needs_test"),
        ),
        sa.CheckConstraint(
            "retry_delay_seconds IS NULL OR retry_delay_seconds >= 0",
            name=op.f("ck_qualification_types_retry"),
        ),
        sa.CheckConstraint(
            "is_system = (owner_id IS NULL)",
            name=op.f("ck_qualification_types_system_has_no_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["accounts.id"],
            name=op.f("fk_qualification_types_owner_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qualification_types")),
    )
    op.create_index(
        "uq_qualification_types_owner_name",
        "qualification_types",
        [sa.literal_column("coalesce(owner_id, '')"), sa.literal_column("lower(name)")],
        unique=True,
    )
    op.create_index("ix_qualification_types_owner_id_id", "qualification_types", ["owner_id", "id"])
    op.create_index(
        "ix_qualification_types_active_id",
        "qualification_types",
        ["id"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_qualification_types_name_trgm",
        "qualification_types",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_qualification_types_keywords",
        "qualification_types",
        ["keywords"],
        postgresql_using="gin",
    )

    op.create_table(
        "qualification_attempts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("qualification_type_id", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("questions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("answer_key", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("answers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("max_points", sa.Integer(), nullable=True),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('started', 'pending', 'granted', 'rejected', 'expired')",
            name=op.f("ck_qualification_attempts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["qualification_type_id"],
            ["qualification_types.id"],
            name=op.f("fk_qualification_attempts_type_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["accounts.id"],
            name=op.f("fk_qualification_attempts_worker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qualification_attempts")),
    )
    op.create_index(
        "uq_qualification_attempts_live",
        "qualification_attempts",
        ["qualification_type_id", "worker_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('started', 'pending')"),
    )
    op.create_index(
        "ix_qualification_attempts_worker_type_started",
        "qualification_attempts",
        ["worker_id", "qualification_type_id", "started_at"],
    )
    op.create_index(
        "ix_qualification_attempts_type_status_id",
        "qualification_attempts",
        ["qualification_type_id", "status", "id"],
    )

    op.create_table(
        "worker_qualifications",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("qualification_type_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), server_default="granted", nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('granted', 'revoked')", name=op.f("ck_worker_qualifications_status")
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["accounts.id"],
            name=op.f("fk_worker_qualifications_worker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["qualification_type_id"],
            ["qualification_types.id"],
            name=op.f("fk_worker_qualifications_type_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "worker_id", "qualification_type_id", name=op.f("pk_worker_qualifications")
        ),
        sa.UniqueConstraint("id", name=op.f("uq_worker_qualifications_id")),
    )
    op.create_index(
        "ix_worker_qualifications_type_id_id",
        "worker_qualifications",
        ["qualification_type_id", "id"],
    )

    op.create_table(
        "worker_blocks",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["accounts.id"],
            name=op.f("fk_worker_blocks_worker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["accounts.id"],
            name=op.f("fk_worker_blocks_requester_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker_id", "requester_id", name=op.f("pk_worker_blocks")),
        sa.UniqueConstraint("id", name=op.f("uq_worker_blocks_id")),
    )
    op.create_index("ix_worker_blocks_requester_id_id", "worker_blocks", ["requester_id", "id"])

    # Stats: the triggers first (CREATE TRIGGER locks out writers to assignments until this
    # migration commits), then the counters of the assignments already there.
    op.execute(_STATS_FUNCTION)
    op.execute(_STATS_TRUNCATE_FUNCTION)
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(
        f"""
        INSERT INTO worker_stats (worker_id, submitted_count, approved_count, rejected_count)
        SELECT worker_id,
               count(*) FILTER (WHERE status IN {_DECIDED}),
               count(*) FILTER (WHERE status = 'approved'),
               count(*) FILTER (WHERE status = 'rejected')
        FROM assignments GROUP BY worker_id
        """
    )

    # A profile row for every existing worker, defaulting from the account.
    op.execute(
        """
        INSERT INTO worker_profiles (worker_id, display_name, country, languages)
        SELECT id, name, country, languages FROM accounts WHERE kind = 'worker'
        """
    )

    types = sa.table(
        "qualification_types",
        sa.column("id", sa.String),
        sa.column("owner_id", sa.String),
        sa.column("name", sa.Text),
        sa.column("description", sa.Text),
        sa.column("keywords", sa.ARRAY(sa.Text())),
        sa.column("status", sa.String),
        sa.column("is_system", sa.Boolean),
    )
    op.bulk_insert(
        types,
        [
            {
                "id": type_id,
                "owner_id": None,
                "name": name,
                "description": description,
                "keywords": keywords,
                "status": "active",
                "is_system": True,
            }
            for type_id, name, description, keywords in SYSTEM_TYPES
        ],
    )


def downgrade() -> None:
    for trigger in (
        "assignments_worker_stats_truncate",
        "assignments_worker_stats_delete",
        "assignments_worker_stats_update",
        "assignments_worker_stats_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON assignments")
    op.execute("DROP FUNCTION IF EXISTS worker_stats_reset()")
    op.execute("DROP FUNCTION IF EXISTS worker_stats_track_assignment()")
    op.drop_table("worker_blocks")
    op.drop_table("worker_qualifications")
    op.drop_table("qualification_attempts")
    op.drop_table("qualification_types")
    op.drop_table("worker_stats_deltas")
    op.drop_table("worker_stats")
    op.drop_table("worker_profiles")
