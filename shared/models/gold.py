"""Gold and review tallies per (project, worker) (owner: tasks service)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column


class GoldStats(Base):
    """One row per (project, worker) who submitted in the project.

    `answered`/`correct` count gold tasks (min_gold_accuracy; discovery reads them too);
    `submitted`/`approved`/`rejected` count that worker's answers in the project for the owner's
    per-worker page. No foreign keys: a key check would share-lock the hot project row on every
    submit.
    """

    __tablename__ = "gold_stats"

    project_id: Mapped[str] = id_column(primary_key=True)
    worker_id: Mapped[str] = id_column(primary_key=True)
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
