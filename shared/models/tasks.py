"""Projects, tasks and assignments (owner: tasks service).

Read by the workers service (worker stats, system qualifications) and the payments service
(earnings by day/project, hours worked), so the columns named here are a cross-service contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(64), ForeignKey("accounts.id"), nullable=False)
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
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the tasks uploaded before publish stop being offered: published_at +
    # lifetime_seconds, written by publish (NULL while a draft). Those tasks keep
    # `tasks.expires_at` NULL ("the project's"), so publishing writes this one row instead of
    # every task row (bench/RESULTS.md, proposal 7).
    tasks_expire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the lifetime sweep found none of those tasks open any more (it expires them in
    # batches after tasks_expire_at). Until then the project is in ix_projects_tasks_expiry, the
    # sweep's list of projects to look at, which so stays the size of the live projects.
    tasks_expiry_swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published', 'paused', 'closed')", name="status"),
        CheckConstraint("reward_cents >= 0 AND fee_cents >= 0", name="money_nonnegative"),
        Index("ix_projects_requester_id_id", "requester_id", "id"),
        Index("ix_projects_published", "id", postgresql_where=text("status = 'published'")),
        Index(
            "ix_projects_tasks_expiry",
            "tasks_expire_at",
            postgresql_where=text("tasks_expire_at IS NOT NULL AND tasks_expiry_swept_at IS NULL"),
        ),
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), ForeignKey("projects.id"), nullable=False)
    requester_id: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str | None] = mapped_column(Text)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    # Each task keeps its own number of assignments (MTurk's MaxAssignments per HIT),
    # defaulting to the project's assignments_per_task when created.
    max_assignments: Mapped[int] = mapped_column(Integer, nullable=False)
    # Slots a worker can claim right now: max_assignments minus live (accepted, submitted) and
    # approved assignments. Accept decrements it; return, expiry and rejection give the slot back.
    open_slots: Mapped[int] = mapped_column(Integer, nullable=False)
    # Slots consumed by approvals paid from the reservation (row-locked +1, so "completed" is
    # exact under concurrent approvals). Overrides paid from available do not count.
    approved_slots: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # A random rank: accept starts its scan at a random rank so concurrent workers spread over
    # the project's tasks instead of fighting over (and bloating) one queue head.
    claim_rank: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("floor(random() * 2147483647)::integer")
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    created_at: Mapped[datetime] = created_at_column()
    # When the task stops being offered. NULL means "the project's `tasks_expire_at`": tasks
    # uploaded into a draft (NULL while it is one; set once, on the project row, by publish).
    # Tasks uploaded into a live project get their own (their upload + lifetime_seconds), and
    # the lifetime sweep writes the project's value into the rows it expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('open', 'completed', 'expired')", name="status"),
        CheckConstraint("max_assignments BETWEEN 1 AND 100", name="max_assignments"),
        CheckConstraint("open_slots BETWEEN 0 AND max_assignments", name="open_slots"),
        CheckConstraint("approved_slots BETWEEN 0 AND max_assignments", name="approved_slots"),
        Index("ix_tasks_project_id_id", "project_id", "id"),
        Index(
            "ix_tasks_claim",
            "project_id",
            "claim_rank",
            postgresql_where=text("status = 'open' AND open_slots > 0"),
        ),
        # The open tasks that inherit their project's expiry, per project: the lifetime sweep
        # finds a due project's tasks here. The twin of ix_tasks_expires_open (timers.py, the
        # open tasks with their own expiry): every open task is in exactly one of the two.
        Index(
            "ix_tasks_inherited_expiry_open",
            "project_id",
            postgresql_where=text("status = 'open' AND expires_at IS NULL"),
        ),
    )


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    requester_id: Mapped[str] = mapped_column(String(64), nullable=False)
    worker_id: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="accepted")
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    feedback: Mapped[str | None] = mapped_column(Text)
    reward_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    accepted_at: Mapped[datetime] = created_at_column()
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    auto_approve_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('accepted', 'submitted', 'approved', 'rejected', 'returned', 'expired')",
            name="status",
        ),
        # One worker never holds two assignments of one task, whatever happened to the first.
        UniqueConstraint("task_id", "worker_id", name="uq_assignments_task_id_worker_id"),
        Index("ix_assignments_worker_id_id", "worker_id", "id"),
        Index("ix_assignments_project_id_status_id", "project_id", "status", "id"),
        Index(
            "ix_assignments_deadline_accepted",
            "deadline",
            postgresql_where=text("status = 'accepted'"),
        ),
        Index(
            "ix_assignments_auto_approve_submitted",
            "auto_approve_at",
            postgresql_where=text("status = 'submitted'"),
        ),
    )
