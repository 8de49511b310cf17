"""Fair review (owner: tasks service, services/tasks/appeals/ and lifecycle/reject.py).

- `appeals`: a worker's appeal of a rejection, at most one per assignment (the unique key is
  the rule "once"), answered by the requester: overturned (the rejection becomes a paid
  approval, lifecycle/override.py) or upheld with a reason. An appeal still open 7 days after it
  was made counts as overturned in the requester's scorecard (discovery), though nothing is paid.
- `daily_rejection_counts`: how many rejections one requester gave one worker on one UTC day.
  The reject statement adds to its row and marks the rejections beyond
  `TASKS_REJECTIONS_COUNTED_PER_REQUESTER_PER_DAY` `assignments.standing_excluded`, so the
  count is exact under concurrent rejects (the row is the serialisation point). The scorecard's
  "rejections given" is the sum of a requester's rows.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class Appeal(Base):
    __tablename__ = "appeals"

    id: Mapped[str] = id_column(primary_key=True)
    assignment_id: Mapped[str] = id_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    project_id: Mapped[str] = id_column(nullable=False)
    requester_id: Mapped[str] = id_column(nullable=False)
    worker_id: Mapped[str] = id_column(nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    # The requester's words with its answer: the reason of an upholding, the feedback of an
    # overturn (optional there).
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    decided_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("status IN ('open', 'overturned', 'upheld')", name="status"),
        CheckConstraint("(status = 'open') = (decided_at IS NULL)", name="decided_at"),
        Index("ix_appeals_requester_id_id", "requester_id", "id"),
        Index("ix_appeals_project_id_id", "project_id", "id"),
        Index("ix_appeals_worker_id_id", "worker_id", "id"),
    )


class DailyRejectionCount(Base):
    __tablename__ = "daily_rejection_counts"

    requester_id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rejections: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (CheckConstraint("rejections > 0", name="rejections"),)
