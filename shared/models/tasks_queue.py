"""The tasks service's queue side: gold/review stats per worker, the payments outbox
(owner: tasks service; migration 0003).

Import this module directly (shared/models/__init__.py is not edited by the queue side).

Migration 0003 also adds columns to `tasks`, which shared/models/tasks.py (frozen) does not
describe yet; the queue's SQL names them directly:

- `claim_rank integer NOT NULL DEFAULT floor(random() * 2147483647)` — where a task sits in its
  project's claim order; accept starts at a random rank so workers spread over the tasks.
- `approved_slots integer NOT NULL DEFAULT 0` — slots consumed by approvals paid from the
  reservation; the task is `completed` when it reaches `max_assignments`.
- index `ix_tasks_claim (project_id, claim_rank) WHERE status = 'open' AND open_slots > 0`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column


class GoldStats(Base):
    """One row per (project, worker) who submitted in the project.

    `answered`/`correct` count gold tasks (min_gold_accuracy; discovery reads them too);
    `submitted`/`approved`/`rejected` count that worker's answers in the project for the owner's
    per-worker page. No foreign keys: a key check would share-lock the hot project row on every
    submit.
    """

    __tablename__ = "gold_stats"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answered: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    correct: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    submitted: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    approved: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("answered >= 0 AND correct BETWEEN 0 AND answered", name="gold"),
        CheckConstraint("submitted >= 0 AND approved >= 0 AND rejected >= 0", name="counts"),
    )


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
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('payout', 'release')", name="kind"),
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND parked_at IS NULL"),
        ),
    )
