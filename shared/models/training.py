"""Training progress (owner: tasks service, services/tasks/training/).

One row per (training project, worker): the worker's current attempt and its outcome. Every
training submit of the worker updates this row under its lock, so the attempt's counts are
exact under concurrent submits and the pass (which enqueues the qualification grant) happens
in exactly one transaction. No foreign keys: a key check would share-lock the project row on
every submit, as for gold_stats.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class TrainingProgress(Base):
    __tablename__ = "training_progress"

    project_id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(primary_key=True)
    # 1 for the first attempt; a retry (after a failure and the type's retry delay) starts the
    # next one with its counts at zero.
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="in_progress")
    # Answers of the current attempt: submitted ones of assignments accepted since it started.
    answered: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    correct: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    started_at: Mapped[datetime] = created_at_column()
    decided_at: Mapped[datetime | None] = timestamp_column()
    # A failed attempt: when the next may start (the type's retry delay after the failure);
    # NULL on a failure means never (a type without a retry delay allows one attempt).
    retry_at: Mapped[datetime | None] = timestamp_column()
    # The qualification value granted at the pass: the attempt's accuracy, 0-100.
    granted_value: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("status IN ('in_progress', 'passed', 'failed')", name="status"),
        CheckConstraint(
            "attempt >= 1 AND answered >= 0 AND correct BETWEEN 0 AND answered", name="counts"
        ),
        CheckConstraint("(status = 'passed') = (granted_value IS NOT NULL)", name="granted"),
    )
