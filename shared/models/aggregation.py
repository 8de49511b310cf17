"""Aggregation runs and their cached results (owner: tasks service, services/tasks/results/).

A run is one crowd-kit method applied to one project's answers as they stood at `watermark`
(the project's answer counters, see results/repository.py). A results request for a method
finds the run of the current watermark, or starts one: new answers, rejections and overrides
move the watermark, so a cached run is never served for answers it did not see. A finished
run supersedes the older runs of the same project and method (deleted 10 minutes later).

- `aggregation_task_results`: one row per task with answers (the aggregate answer, the
  method's confidence, the share of answers that agree with it).
- `aggregation_worker_skills`: one row per worker who answered (the method's skill estimate).
- `lease_until`: a running run belongs to the process that heartbeats it; past the lease (a
  process that died), the next request for it takes it over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class AggregationRun(Base):
    __tablename__ = "aggregation_runs"

    id: Mapped[str] = id_column(primary_key=True)
    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    watermark: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    stage: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    task_count: Mapped[int | None] = mapped_column(Integer)
    answer_count: Mapped[int | None] = mapped_column(Integer)
    worker_count: Mapped[int | None] = mapped_column(Integer)
    compute_seconds: Mapped[float | None] = mapped_column(Float)
    lease_until: Mapped[datetime | None] = timestamp_column()
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
        CheckConstraint(
            "stage IN ('queued', 'loading', 'aggregating', 'storing', 'done', 'failed')",
            name="stage",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        UniqueConstraint("project_id", "method", "watermark", name="uq_aggregation_runs_key"),
        Index("ix_aggregation_runs_project_id_method", "project_id", "method", "created_at"),
    )


class AggregationTaskResult(Base):
    __tablename__ = "aggregation_task_results"

    run_id: Mapped[str] = id_column(
        ForeignKey("aggregation_runs.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[str] = id_column(primary_key=True)
    answer: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    agreement: Mapped[float] = mapped_column(Float, nullable=False)


class AggregationWorkerSkill(Base):
    __tablename__ = "aggregation_worker_skills"

    run_id: Mapped[str] = id_column(
        ForeignKey("aggregation_runs.id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[str] = id_column(primary_key=True)
    skill: Mapped[float | None] = mapped_column(Float)
    answers: Mapped[int] = mapped_column(Integer, nullable=False)
