"""Rate-limit counters shared by every process of every service (shared.ratelimit), one row per
bucket and window: `hits` in the fixed window `window_no` (Unix time // window length), i.e. the
units leased to processes (each spends its lease locally), and `granted`, the last lease's size
(what the leasing statement's RETURNING reports).

UNLOGGED: a counter is written on every authenticated request, and WAL for it would cost every
request a log write and the streaming replica a copy of data nobody reads there; after a crash
Postgres empties the table, which only forgives the current minute's counts. `expires_at` (two
windows after the window began: the sliding window still weighs the previous one) is what the
prune deletes by; fillfactor 70 leaves room on each page so `hits += 1` stays a HOT update.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, timestamp_column


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    bucket: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    window_no: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)
    granted: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    expires_at: Mapped[datetime] = timestamp_column(nullable=False)

    __table_args__ = (
        Index("ix_rate_limit_counters_expires_at", "expires_at"),
        {"prefixes": ["UNLOGGED"], "postgresql_with": {"fillfactor": 70}},
    )
