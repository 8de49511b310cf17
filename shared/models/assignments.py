"""Assignments (owner: tasks service): one worker's answer to one task, through its lifecycle
(services/tasks/lifecycle/). Read by the workers service (worker stats) and the payments
service (earnings, hours worked).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[str] = id_column(primary_key=True)
    task_id: Mapped[str] = id_column(ForeignKey("tasks.id"), nullable=False)
    project_id: Mapped[str] = id_column(nullable=False)
    requester_id: Mapped[str] = id_column(nullable=False)
    worker_id: Mapped[str] = id_column(nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="accepted")
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    feedback: Mapped[str | None] = mapped_column(Text)
    reward_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    accepted_at: Mapped[datetime] = created_at_column()
    deadline: Mapped[datetime] = timestamp_column(nullable=False)
    submitted_at: Mapped[datetime | None] = timestamp_column()
    reviewed_at: Mapped[datetime | None] = timestamp_column()
    auto_approve_at: Mapped[datetime | None] = timestamp_column()
    ended_at: Mapped[datetime | None] = timestamp_column()
    # The answer does not count toward the worker's standing (approval rate, approved count,
    # level figures): a training answer, or a rejection beyond the daily per-requester cap.
    standing_excluded: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # The submit's grading of a gold answer (NULL: the task has no gold answer, or the answer was
    # submitted before gold grading was stored per answer); the worker levels read the last 200.
    gold_correct: Mapped[bool | None] = mapped_column(Boolean)

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
        # The worker levels' bounded windows (services/workers/levels/): the last 1,000 decided
        # answers that count, and the last 200 gold answers that count.
        Index(
            "ix_assignments_worker_decided",
            "worker_id",
            "reviewed_at",
            "id",
            postgresql_include=["status"],
            postgresql_where=text("status IN ('approved', 'rejected') AND NOT standing_excluded"),
        ),
        Index(
            "ix_assignments_worker_gold",
            "worker_id",
            "submitted_at",
            "id",
            postgresql_include=["gold_correct"],
            postgresql_where=text("gold_correct IS NOT NULL AND NOT standing_excluded"),
        ),
    )
