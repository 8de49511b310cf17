"""Requester scorecards (owner: tasks service, services/tasks/discovery/scorecard.py): the
figures workers see of a requester in discovery, precomputed by a timer sweep so the work
listing (a hot read) reads one row per requester instead of aggregating its history.

Every figure is measured by the platform: decisions (approved, rejected), the median time from
submission to decision, the median effective hourly pay of approved answers (reward + pay floor
top-up over the measured working time; an hourly project's rate), and the share of reviewed
timesheets that were disputed; rejections given, appeals received and appeals overturned
(an appeal unanswered for 7 days counts as overturned).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, id_column, timestamp_column


class RequesterScorecard(Base):
    __tablename__ = "requester_scorecards"

    requester_id: Mapped[str] = id_column(primary_key=True)
    approved: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rejected: Mapped[int] = mapped_column(BigInteger, nullable=False)
    median_review_seconds: Mapped[float | None] = mapped_column(Float)
    # Cents per hour; NULL until enough measured work exists (discovery.scorecard).
    effective_hourly_cents: Mapped[int | None] = mapped_column(BigInteger)
    rated_answers: Mapped[int] = mapped_column(BigInteger, nullable=False)
    timesheets_reviewed: Mapped[int] = mapped_column(Integer, nullable=False)
    timesheets_disputed: Mapped[int] = mapped_column(Integer, nullable=False)
    # Fair review (migration 0018): every rejection the requester gave (overturned ones too),
    # the appeals of them, and the appeals overturned or left unanswered 7 days.
    rejections_given: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    appeals_received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    appeals_overturned: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refreshed_at: Mapped[datetime] = timestamp_column(nullable=False)

    __table_args__ = (Index("ix_requester_scorecards_refreshed_at", "refreshed_at"),)
