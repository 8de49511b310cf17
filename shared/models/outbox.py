"""The payments outbox (owner: tasks service): payouts and releases committed with the change
that caused them, delivered after the commit (services/tasks/outbox/).

`ix_outbox_delivered`: the retention sweep deletes the oldest delivered messages without
reading the pending ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, timestamp_column


class OutboxMessage(Base):
    """A payout or release committed with the change that caused it, sent to payments later.

    `key` is the payments idempotency key (`pay:{assignment_id}`, `release:...`), so a message
    delivered twice (a lease that ran out mid-call, two replicas) moves money once. A message
    payments refuses for good (a 4xx) is parked with its error for a human to look at.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = timestamp_column(
        nullable=False, server_default=text("now()")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = timestamp_column()
    parked_at: Mapped[datetime | None] = timestamp_column()

    __table_args__ = (
        CheckConstraint("kind IN ('payout', 'release', 'top_up', 'grant')", name="kind"),
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND parked_at IS NULL"),
        ),
    )


OUTBOX_DELIVERED = Index(
    "ix_outbox_delivered",
    OutboxMessage.__table__.c.delivered_at,
    postgresql_where=text("delivered_at IS NOT NULL"),
)
