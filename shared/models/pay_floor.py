"""The pay floor of per-answer projects (owner: tasks service, services/tasks/pay_floor/).

- `pay_floors`: one row per published project with `min_hourly_rate_cents`, written by publish:
  the floor's terms fixed at publish (rate, reward, the duration that caps measured time, the
  worst-case top-up + fee per slot) and the money of the worst case: reserved (publish and
  uploads), paid (top-ups + fees) and released. `next_settlement_at` is when the settlement
  sweep looks at the project next; `finished_at` ends the floor (closed, nothing in flight,
  everything settled, the rest released).
- `pay_floor_settlements`: one row per project and period (an ISO week, UTC, by approval time;
  `period_start` is its Monday): the median measured working time of the period's approved
  answers and the top-up each got. Unique per project and period, so a period is never settled
  twice whatever races.
- `pay_floor_answers`: every approved answer a settlement covered (top-up 0 included), keyed by
  the assignment, so no answer is ever counted or paid twice; its top-up is paid through the
  outbox under `topup:{assignment_id}`.

Read by the discovery scorecard (an answer's pay includes its top-up).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class PayFloor(Base):
    __tablename__ = "pay_floors"

    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), primary_key=True)
    requester_id: Mapped[str] = id_column(nullable=False)
    min_hourly_rate_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reward_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Measured time is capped here: the assignment duration when the money was reserved (the
    # duration may be edited later; the reserve's worst case may not grow with it).
    duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    worst_top_up_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    worst_fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reserved_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    paid_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    released_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    next_settlement_at: Mapped[datetime] = timestamp_column(nullable=False)
    finished_at: Mapped[datetime | None] = timestamp_column()
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint(
            "min_hourly_rate_cents > 0 AND reward_cents > 0 AND duration_seconds > 0 "
            "AND worst_top_up_cents >= 0 AND worst_fee_cents >= 0",
            name="terms",
        ),
        CheckConstraint(
            "reserved_cents >= 0 AND paid_cents >= 0 AND released_cents >= 0 "
            "AND released_cents <= reserved_cents",
            name="money",
        ),
        Index(
            "ix_pay_floors_due",
            "next_settlement_at",
            postgresql_where=text("finished_at IS NULL"),
        ),
    )


class PayFloorSettlement(Base):
    __tablename__ = "pay_floor_settlements"

    id: Mapped[str] = id_column(primary_key=True)
    project_id: Mapped[str] = id_column(ForeignKey("pay_floors.project_id"), nullable=False)
    period_start: Mapped[date] = mapped_column(Date, nullable=False)
    answers: Mapped[int] = mapped_column(Integer, nullable=False)
    median_seconds: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)
    top_up_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    paid_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    released_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # The project's last settlement (closed, nothing in flight): the rest of the reserve went back.
    final: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    settled_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("extract(isodow FROM period_start) = 1", name="period_start_monday"),
        CheckConstraint(
            "answers > 0 AND top_up_cents >= 0 AND fee_cents >= 0 AND paid_cents >= 0 "
            "AND released_cents >= 0",
            name="nonnegative",
        ),
        UniqueConstraint(
            "project_id", "period_start", name="uq_pay_floor_settlements_project_period"
        ),
    )


class PayFloorAnswer(Base):
    __tablename__ = "pay_floor_answers"

    assignment_id: Mapped[str] = id_column(ForeignKey("assignments.id"), primary_key=True)
    settlement_id: Mapped[str] = id_column(ForeignKey("pay_floor_settlements.id"), nullable=False)
    project_id: Mapped[str] = id_column(nullable=False)
    worker_id: Mapped[str] = id_column(nullable=False)
    top_up_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Where the top-up comes from: the floor's reserve, or (an answer beyond the reserved slots:
    # an override of a rejected answer) the requester's available balance.
    source: Mapped[str] = mapped_column(String(16), nullable=False)

    __table_args__ = (
        CheckConstraint("source IN ('reserved', 'available')", name="source"),
        CheckConstraint("top_up_cents >= 0 AND fee_cents >= 0", name="nonnegative"),
        Index("ix_pay_floor_answers_settlement_id", "settlement_id"),
    )
