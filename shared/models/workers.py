"""Worker profiles, stats counters, qualification types, attempts, grants and blocks.

Owner: workers service. Read by the tasks service through `shared/eligibility.py` (grants, blocks,
stats, profile country), so the columns that function reads are a cross-service contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column

ATTEMPT_STATUSES = ("started", "pending", "granted", "rejected", "expired")
LIVE_ATTEMPT_STATUSES = ("started", "pending")


class WorkerProfile(Base):
    """One row per worker; display_name, country and languages start as the account's."""

    __tablename__ = "worker_profiles"

    worker_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    display_name: Mapped[str] = mapped_column(Text, nullable=False)
    country: Mapped[str | None] = mapped_column(String(2))
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    skills: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    bio: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class WorkerStats(Base):
    """Compacted per-worker assignment counters (see WorkerStatsDelta for the live part).

    A worker's true counts are this row plus the sum of its delta rows; both are read in one
    statement (one snapshot), so the total is exact at every moment. They count the worker's
    standing: an assignment with `standing_excluded` (a training answer, a rejection beyond the
    daily per-requester cap) counts nowhere, and a flip of the flag on a decided assignment
    moves the counters by exactly that assignment (trigger function of migration 0018).
    """

    __tablename__ = "worker_stats"

    # No foreign key: the counters follow assignments.worker_id, which has none either.
    worker_id: Mapped[str] = id_column(primary_key=True)
    submitted_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    approved_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rejected_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = created_at_column()


class WorkerStatsDelta(Base):
    """Append-only changes written by a trigger on `assignments` in the changing transaction.

    Insert-only rows take no row locks, so concurrent reviews of one worker's assignments (bulk
    review, auto-approval) never wait on, or deadlock over, a shared counter row. A background
    loop folds them into `worker_stats`.
    """

    __tablename__ = "worker_stats_deltas"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    worker_id: Mapped[str] = id_column(nullable=False)
    submitted: Mapped[int] = mapped_column(Integer, nullable=False)
    approved: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("ix_worker_stats_deltas_worker_id", "worker_id"),)


class QualificationType(Base):
    __tablename__ = "qualification_types"

    id: Mapped[str] = id_column(primary_key=True)
    # NULL for the system types, which nobody owns and nobody can grant.
    owner_id: Mapped[str | None] = id_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    test: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    answer_key: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    retry_delay_seconds: Mapped[int | None] = mapped_column(Integer)
    auto_grant: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    auto_grant_value: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    is_system: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    # The MTurk XML a type made through the door was converted from (migration 0021): what
    # GetQualificationType answers as Test and AnswerKey; cleared when the native form changes.
    mturk_test: Mapped[str | None] = mapped_column(Text)
    mturk_answer_key: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('active', 'inactive')", name="status"),
        CheckConstraint("mturk_test IS NULL OR test IS NOT NULL", name="mturk_test_needs_test"),
        CheckConstraint(
            "mturk_answer_key IS NULL OR answer_key IS NOT NULL",
            name="mturk_answer_key_needs_answer_key",
        ),
        CheckConstraint("NOT (auto_grant AND test IS NOT NULL)", name="auto_grant_has_no_test"),
        CheckConstraint("answer_key IS NULL OR test IS NOT NULL", name="answer_key_needs_test"),
        CheckConstraint("retry_delay_seconds IS NULL OR retry_delay_seconds >= 0", name="retry"),
        CheckConstraint("is_system = (owner_id IS NULL)", name="system_has_no_owner"),
        # Name unique per requester; system types (owner NULL) share the '' owner slot.
        Index(
            "uq_qualification_types_owner_name",
            func.coalesce(owner_id, ""),
            func.lower(name),
            unique=True,
        ),
        Index("ix_qualification_types_owner_id_id", "owner_id", "id"),
        Index("ix_qualification_types_active_id", "id", postgresql_where=text("status = 'active'")),
        Index(
            "ix_qualification_types_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        Index("ix_qualification_types_keywords", "keywords", postgresql_using="gin"),
    )


class QualificationAttempt(Base):
    """One request for a qualification: a timed test, a plain request, or an auto-grant.

    It keeps a snapshot of the questions and answer key it was started with, so an owner editing
    the test never changes what an in-flight attempt is graded against.
    """

    __tablename__ = "qualification_attempts"

    id: Mapped[str] = id_column(primary_key=True)
    qualification_type_id: Mapped[str] = id_column(
        ForeignKey(
            "qualification_types.id",
            ondelete="CASCADE",
            name="fk_qualification_attempts_type_id",  # the convention's name exceeds 63 chars
        ),
        nullable=False,
    )
    worker_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    questions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB(none_as_null=True))
    answer_key: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    points: Mapped[int | None] = mapped_column(Integer)
    max_points: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = timestamp_column(nullable=False)
    deadline: Mapped[datetime | None] = timestamp_column()
    submitted_at: Mapped[datetime | None] = timestamp_column()
    reviewed_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint(
            "status IN ('started', 'pending', 'granted', 'rejected', 'expired')", name="status"
        ),
        # At most one live (in progress or awaiting review) attempt per worker and type, enforced
        # by the database so that concurrent starts cannot both win.
        Index(
            "uq_qualification_attempts_live",
            "qualification_type_id",
            "worker_id",
            unique=True,
            postgresql_where=text("status IN ('started', 'pending')"),
        ),
        Index(
            "ix_qualification_attempts_worker_type_started",
            "worker_id",
            "qualification_type_id",
            "started_at",
        ),
        Index("ix_qualification_attempts_type_status_id", "qualification_type_id", "status", "id"),
    )


class WorkerQualification(Base):
    """A grant: the worker holds the type with a value (revoked rows are kept for audit)."""

    __tablename__ = "worker_qualifications"

    worker_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    qualification_type_id: Mapped[str] = id_column(
        ForeignKey(
            "qualification_types.id", ondelete="CASCADE", name="fk_worker_qualifications_type_id"
        ),
        primary_key=True,
    )
    # Time-sortable listing key; a fresh one each time the grant (re)starts.
    id: Mapped[str] = id_column(nullable=False, unique=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="granted")
    granted_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = timestamp_column()
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('granted', 'revoked')", name="status"),
        Index("ix_worker_qualifications_type_id_id", "qualification_type_id", "id"),
    )


class WorkerBlock(Base):
    """A requester's block of a worker: no discover, preview or accept of its work."""

    __tablename__ = "worker_blocks"

    # Keyed by worker first: eligibility asks "which of these requesters block this worker".
    worker_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    requester_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = id_column(nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_worker_blocks_requester_id_id", "requester_id", "id"),)


class WorkerLevel(Base):
    """The worker's platform level (0 entry .. 3 expert), read by eligibility (`system.level`)
    and by accept (pay tiers); kept by the workers service's levels domain.

    `below_since`/`fall_at`: the grace period. Set by the first recompute that finds the worker
    below its level's thresholds; cleared by one that finds it back above; the level falls at
    the first recompute at or after `fall_at` (the levels loop sweeps `ix_worker_levels_fall_at`).
    """

    __tablename__ = "worker_levels"

    worker_id: Mapped[str] = id_column(primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    since: Mapped[datetime] = created_at_column()
    below_since: Mapped[datetime | None] = timestamp_column()
    fall_at: Mapped[datetime | None] = timestamp_column()
    checked_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("level BETWEEN 0 AND 3", name="level"),
        CheckConstraint("(below_since IS NULL) = (fall_at IS NULL)", name="grace"),
        Index("ix_worker_levels_fall_at", "fall_at", postgresql_where=text("fall_at IS NOT NULL")),
    )


class WorkerLevelChange(Base):
    """The ladder's history: one row per rise or fall, with the figures it was decided on."""

    __tablename__ = "worker_level_changes"

    id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(nullable=False)
    from_level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    to_level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    changed_at: Mapped[datetime] = timestamp_column(nullable=False)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        CheckConstraint(
            "from_level BETWEEN 0 AND 3 AND to_level BETWEEN 0 AND 3 AND from_level <> to_level",
            name="levels",
        ),
        Index("ix_worker_level_changes_worker_id_id", "worker_id", "id"),
    )


class WorkerTestPassed(Base):
    """A qualification test the worker passed (a test attempt granted with a value above 0, or
    a training project's pass): the ladder's "tests passed" figure counts these rows."""

    __tablename__ = "worker_tests_passed"

    worker_id: Mapped[str] = id_column(primary_key=True)
    qualification_type_id: Mapped[str] = id_column(primary_key=True)
    via: Mapped[str] = mapped_column(String(16), nullable=False)
    passed_at: Mapped[datetime] = timestamp_column(nullable=False)

    __table_args__ = (CheckConstraint("via IN ('test', 'training')", name="via"),)


class WorkerLevelQueue(Base):
    """Workers whose level must be recomputed (their figures may have changed): written by the
    stats compaction and by passed qualification tests, drained by the levels loop."""

    __tablename__ = "worker_level_queue"

    worker_id: Mapped[str] = id_column(primary_key=True)
    queued_at: Mapped[datetime] = created_at_column()
