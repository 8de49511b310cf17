"""Tasks (owner: tasks service): one item to label, with its open slots and claim order.

- `claim_rank`: where a task sits in its project's claim order; accept starts at a random rank
  so concurrent workers spread over the tasks instead of fighting over one queue head.
- `approved_slots`: slots consumed by approvals paid from the reservation; the task is
  `completed` when it reaches `max_assignments`.
- `ix_tasks_expires_open`: the lifetime sweep takes the oldest open tasks past their own
  lifetime (tasks added after publish); tasks uploaded before publish inherit the project's
  (`projects.tasks_expire_at`) and are swept per project.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = id_column(primary_key=True)
    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), nullable=False)
    requester_id: Mapped[str] = id_column(nullable=False)
    external_id: Mapped[str | None] = mapped_column(Text)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    # Why the gold answer is right: shown to a worker after their own submit of a training task.
    explanation: Mapped[str | None] = mapped_column(Text)
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
    expires_at: Mapped[datetime | None] = timestamp_column()
    # How many times the task came back after expiring (its expiry moved into the future
    # again: PATCH /v1/tasks/{id}, MTurk's UpdateExpirationForHIT). A task expires at most once
    # per value, so the release keys of its expiries carry it and stay unique per event.
    reopened_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Set when the owner disposed of the task (MTurk's DeleteHIT): it leaves the task lists,
    # keeps its row, answers and ledger history, and is final (services/tasks/task_changes).
    disposed_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("status IN ('open', 'completed', 'expired')", name="status"),
        CheckConstraint("max_assignments BETWEEN 1 AND 100", name="max_assignments"),
        CheckConstraint("open_slots BETWEEN 0 AND max_assignments", name="open_slots"),
        CheckConstraint("approved_slots BETWEEN 0 AND max_assignments", name="approved_slots"),
        CheckConstraint("reopened_count >= 0", name="reopened_count"),
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


TASKS_EXPIRES_OPEN = Index(
    "ix_tasks_expires_open",
    Task.__table__.c.expires_at,
    postgresql_where=text("status = 'open' AND expires_at IS NOT NULL"),
)
