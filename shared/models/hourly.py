"""Hourly work (owner: tasks service): work sessions, timesheets and each hourly project's
budget counter (services/tasks/sessions/, services/tasks/timesheets/).

Read by the payments service (earnings: hours worked) and the scorecard (share of timesheets
disputed), so the columns of `work_sessions` and `timesheets` named here are a cross-service
contract.

- `work_sessions`: one worker's stretch of work in one hourly project. Time is measured by the
  server only: each activity event (open, heartbeat, accept, submit) adds the gap since the
  previous one when it is at most the project's idle timeout. `expires_at` is that previous
  event + the idle timeout: past it the session is idle and the timer ends it. At most one open
  session per worker and project (`uq_work_sessions_open`, also the sweep's way to the open
  sessions). No column a heartbeat writes is indexed and the table is created with fillfactor
  70 (migration 0010): a heartbeat's update is HOT, with no index entry to write, which is
  what keeps it cheap at thousands of open sessions (an index on `expires_at` would cost five
  index inserts per heartbeat to save the once-a-second sweep a walk over the open sessions).
  A session belongs to the ISO week (UTC) it was opened in (`week_start`, a Monday) and ends
  at that week's end.
- `timesheets`: one per worker, project and ISO week: the seconds the week's sessions accrued
  (also the counter the weekly cap is checked against), the sessions opened, and the review:
  `open` until approved by the requester or by the auto-approve timer (`auto_approve_at`, the
  week's end + the project's `auto_approve_seconds`); approval writes `paid_seconds` (the
  undisputed time), `paid_cents` (the worker's pay) and `fee_cents`.
- `hourly_budgets`: one row per hourly project, written at publish: the project's payable
  seconds and how many are used. Every accrual takes its seconds from this row in one atomic
  `UPDATE ... used + LEAST(gap, budget - used)`, so concurrent sessions can never use a second
  more than the budget (`ck_hourly_budgets_within_budget` makes the database the judge too).
  The money columns follow what the publish reservation holds: timesheet payouts and the
  release at close are counted here, so neither can draw more than was reserved.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column

SESSION_END_REASONS = (
    "worker",
    "idle",
    "week_ended",
    "weekly_hours_exhausted",
    "budget_exhausted",
    "project_closed",
    "project_paused",
)


class WorkSession(Base):
    __tablename__ = "work_sessions"

    id: Mapped[str] = id_column(primary_key=True)
    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), nullable=False)
    worker_id: Mapped[str] = id_column(nullable=False)
    requester_id: Mapped[str] = id_column(nullable=False)
    timesheet_id: Mapped[str] = id_column(ForeignKey("timesheets.id"), nullable=False)
    week_start: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    started_at: Mapped[datetime] = timestamp_column(nullable=False)
    last_activity_at: Mapped[datetime] = timestamp_column(nullable=False)
    expires_at: Mapped[datetime] = timestamp_column(nullable=False)
    ended_at: Mapped[datetime | None] = timestamp_column()
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    seconds_worked: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # The hourly rate this session's time is paid at, fixed when it opened from the worker's
    # level then (the project's hourly_rate_by_level; migration 0016_pay_tiers).
    hourly_rate_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    activity_events: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # The dispute of this session's time: `open` (not paid unless withdrawn before the timesheet
    # is approved), `withdrawn` (paid), `upheld` (the timesheet was approved with it standing).
    dispute_status: Mapped[str | None] = mapped_column(String(16))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    disputed_at: Mapped[datetime | None] = timestamp_column()
    dispute_response: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[datetime | None] = timestamp_column()
    dispute_resolved_at: Mapped[datetime | None] = timestamp_column()
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("status IN ('open', 'ended')", name="status"),
        CheckConstraint(
            f"ended_reason IS NULL OR ended_reason IN {SESSION_END_REASONS!r}", name="ended_reason"
        ),
        CheckConstraint(
            "(status = 'ended') = (ended_at IS NOT NULL AND ended_reason IS NOT NULL)",
            name="ended",
        ),
        CheckConstraint("seconds_worked >= 0", name="seconds_nonnegative"),
        CheckConstraint(
            "dispute_status IS NULL OR dispute_status IN ('open', 'withdrawn', 'upheld')",
            name="dispute_status",
        ),
        # One open session per worker and project; also the timer's way to a project's open
        # sessions (budget used up, project closed).
        Index(
            "uq_work_sessions_open",
            "project_id",
            "worker_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_work_sessions_worker_id_id", "worker_id", "id"),
        Index("ix_work_sessions_timesheet_id_id", "timesheet_id", "id"),
    )


class Timesheet(Base):
    __tablename__ = "timesheets"

    id: Mapped[str] = id_column(primary_key=True)
    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), nullable=False)
    worker_id: Mapped[str] = id_column(nullable=False)
    requester_id: Mapped[str] = id_column(nullable=False)
    week_start: Mapped[date] = mapped_column(Date, nullable=False)
    seconds_worked: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    auto_approve_at: Mapped[datetime] = timestamp_column(nullable=False)
    disputed_at: Mapped[datetime | None] = timestamp_column()
    approved_at: Mapped[datetime | None] = timestamp_column()
    approved_by: Mapped[str | None] = mapped_column(String(16))
    paid_seconds: Mapped[int | None] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("status IN ('open', 'approved')", name="status"),
        CheckConstraint(
            "(status = 'approved') = (approved_at IS NOT NULL AND paid_seconds IS NOT NULL)",
            name="approved",
        ),
        CheckConstraint(
            "approved_by IS NULL OR approved_by IN ('requester', 'auto')", name="approved_by"
        ),
        CheckConstraint(
            "seconds_worked >= 0 AND paid_cents >= 0 AND fee_cents >= 0", name="nonnegative"
        ),
        CheckConstraint("extract(isodow FROM week_start) = 1", name="week_start_monday"),
        UniqueConstraint(
            "project_id", "worker_id", "week_start", name="uq_timesheets_project_worker_week"
        ),
        Index(
            "ix_timesheets_auto_approve_open",
            "auto_approve_at",
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_timesheets_worker_id_id", "worker_id", "id"),
        Index("ix_timesheets_project_id_id", "project_id", "id"),
    )


class HourlyBudget(Base):
    __tablename__ = "hourly_budgets"

    project_id: Mapped[str] = id_column(ForeignKey("projects.id"), primary_key=True)
    budget_seconds: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_seconds: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # The publish reservation (budget pay + its fee), what timesheet payouts took from it
    # (pay + fee), and what closing handed back.
    reserved_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    paid_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    released_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    exhausted_at: Mapped[datetime | None] = timestamp_column()
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint(
            "used_seconds >= 0 AND used_seconds <= budget_seconds", name="within_budget"
        ),
        CheckConstraint(
            "paid_cents >= 0 AND released_cents >= 0 "
            "AND paid_cents + released_cents <= reserved_cents",
            name="within_reservation",
        ),
    )
