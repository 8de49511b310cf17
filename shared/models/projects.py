"""Projects (owner: tasks service): a reusable kind of work, its rules, reward and lifetime.

Read by the workers service (eligibility) and the payments service (earnings by project), so the
columns named here are a cross-service contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = id_column(primary_key=True)
    requester_id: Mapped[str] = id_column(ForeignKey("accounts.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="draft")
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    instructions: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    task_type: Mapped[str] = mapped_column(String(32), nullable=False)
    labels: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    multi_label: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    answer_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    reward_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    assignments_per_task: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    assignment_duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    lifetime_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    auto_approve_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    estimated_seconds_per_assignment: Mapped[int | None] = mapped_column(Integer)
    qualification_requirements: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    min_gold_accuracy: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    published_at: Mapped[datetime | None] = timestamp_column()
    closed_at: Mapped[datetime | None] = timestamp_column()
    # When the tasks uploaded before publish stop being offered: published_at +
    # lifetime_seconds, written by publish (NULL while a draft). Those tasks keep
    # `tasks.expires_at` NULL ("the project's"), so publishing writes this one row instead of
    # every task row (bench/RESULTS.md, proposal 7).
    tasks_expire_at: Mapped[datetime | None] = timestamp_column()
    # When the lifetime sweep found none of those tasks open any more (it expires them in
    # batches after tasks_expire_at). Until then the project is in ix_projects_tasks_expiry, the
    # sweep's list of projects to look at, which so stays the size of the live projects.
    tasks_expiry_swept_at: Mapped[datetime | None] = timestamp_column()
    # How work is paid: per approved assignment (reward_cents) or by the hour (shared/models/
    # hourly.py); an hourly project's reward is 0 and its hourly columns are set.
    pay_model: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="per_assignment"
    )
    hourly_rate_cents: Mapped[int | None] = mapped_column(BigInteger)
    max_seconds_per_worker_per_week: Mapped[int | None] = mapped_column(Integer)
    budget_seconds: Mapped[int | None] = mapped_column(BigInteger)
    idle_timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # A per-answer project's pay floor (shared/models/pay_floor.py): approved answers are topped
    # up to this rate over the median measured working time. NULL: no floor.
    min_hourly_rate_cents: Mapped[int | None] = mapped_column(BigInteger)
    # 'standard' (paid work) or 'training' (practice that grants a qualification; answers never
    # count toward the worker's standing).
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="standard")
    # A training project's qualification type (one of its requester's own), granted with the
    # worker's accuracy once `min_training_answers` answers reach `pass_accuracy` percent
    # (services/tasks/training/). NULL exactly on standard projects.
    training_qualification_type_id: Mapped[str | None] = id_column()
    min_training_answers: Mapped[int | None] = mapped_column(Integer)
    pass_accuracy: Mapped[int | None] = mapped_column(Integer)
    # Pay tiers (migration 0016_pay_tiers, services/tasks/pay_tiers): the tiers as set (cents per
    # level key "1".."3"; NULL: none) and resolved per level 0..3 (index level + 1) with each
    # tier's fee, what accept writes into the assignment. `slot_cents` is what one slot holds in
    # the reservation: the highest tier's reward + fee, or reward + fee without tiers.
    reward_by_level: Mapped[dict[str, int] | None] = mapped_column(JSONB(none_as_null=True))
    level_reward_cents: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    level_fee_cents: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    slot_cents: Mapped[int | None] = mapped_column(
        BigInteger,
        Computed(
            "coalesce(level_reward_cents[4] + level_fee_cents[4], reward_cents + fee_cents)",
            persisted=True,
        ),
    )
    hourly_rate_by_level: Mapped[dict[str, int] | None] = mapped_column(JSONB(none_as_null=True))
    level_hourly_rate_cents: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))

    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'paused', 'closed')", name="status"),
        CheckConstraint("reward_cents >= 0 AND fee_cents >= 0", name="money_nonnegative"),
        CheckConstraint("pay_model IN ('per_assignment', 'hourly')", name="pay_model"),
        CheckConstraint("kind IN ('standard', 'training')", name="kind"),
        CheckConstraint(
            "(kind = 'training') = (training_qualification_type_id IS NOT NULL) "
            "AND (kind = 'training') = (min_training_answers IS NOT NULL) "
            "AND (kind = 'training') = (pass_accuracy IS NOT NULL) "
            "AND (kind = 'standard' OR pay_model = 'per_assignment')",
            name="training",
        ),
        CheckConstraint(
            "min_training_answers BETWEEN 1 AND 1000 AND pass_accuracy BETWEEN 0 AND 100",
            name="training_rule",
        ),
        CheckConstraint(
            "(reward_by_level IS NULL) = (level_reward_cents IS NULL) "
            "AND (level_reward_cents IS NULL) = (level_fee_cents IS NULL) "
            "AND (level_reward_cents IS NULL OR (pay_model = 'per_assignment' "
            "AND cardinality(level_reward_cents) = 4 AND cardinality(level_fee_cents) = 4))",
            name="reward_tiers",
        ),
        CheckConstraint(
            "(hourly_rate_by_level IS NULL) = (level_hourly_rate_cents IS NULL) "
            "AND (level_hourly_rate_cents IS NULL OR (pay_model = 'hourly' "
            "AND cardinality(level_hourly_rate_cents) = 4))",
            name="hourly_rate_tiers",
        ),
        CheckConstraint(
            "pay_model = 'per_assignment' OR (hourly_rate_cents > 0 AND budget_seconds > 0 "
            "AND idle_timeout_seconds > 0 AND reward_cents = 0)",
            name="hourly_fields",
        ),
        CheckConstraint(
            "min_hourly_rate_cents IS NULL OR (min_hourly_rate_cents > 0 "
            "AND pay_model = 'per_assignment')",
            name="min_hourly_rate",
        ),
        Index("ix_projects_requester_id_id", "requester_id", "id"),
        Index("ix_projects_published", "id", postgresql_where=text("status = 'published'")),
        Index(
            "ix_projects_tasks_expiry",
            "tasks_expire_at",
            postgresql_where=text("tasks_expire_at IS NOT NULL AND tasks_expiry_swept_at IS NULL"),
        ),
    )
