"""Worker messages (owner: workers service): what a requester sent a worker it has worked with
(`POST /v1/workers/messages`, MTurk's NotifyWorkers), one row per recipient, read by the worker
(`GET /v1/workers/me/messages`).

- `ix_worker_messages_worker_id_id`: a worker's inbox, newest first (cursor on the id).
- `ix_worker_messages_unread`: the same, unread only (`?unread=true`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column

MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 4096


class WorkerMessage(Base):
    __tablename__ = "worker_messages"

    id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    requester_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    # The id shared by every recipient's copy of one send (one call, up to 100 workers).
    send_id: Mapped[str] = id_column(nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    read_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint(
            f"char_length(subject) BETWEEN 1 AND {MAX_SUBJECT_CHARS}", name="subject_length"
        ),
        CheckConstraint(f"char_length(body) BETWEEN 1 AND {MAX_BODY_CHARS}", name="body_length"),
        Index("ix_worker_messages_worker_id_id", "worker_id", "id"),
        Index(
            "ix_worker_messages_unread",
            "worker_id",
            "id",
            postgresql_where=text("read_at IS NULL"),
        ),
    )
