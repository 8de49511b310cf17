"""SQL of timesheets: reads with their figures, approval, disputes, the hourly money counter.

Lock order as everywhere in hourly work (services/tasks/sessions/repository.py): sessions,
then the timesheet, then the project's `hourly_budgets` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from shared.database import Db, Writable, as_row, as_rows

_WEEK_START_TS = "t.week_start::timestamp AT TIME ZONE 'UTC'"
_WEEK_END_TS = "(t.week_start + 7)::timestamp AT TIME ZONE 'UTC'"

# A timesheet with what the API shows beside its columns: the project's rate, the seconds of
# disputed sessions, and the worker's answers of that week in the project (submitted in the
# week; of those, approved), counted on ix_assignments_worker_id_id.
_TIMESHEET_SELECT = f"""
SELECT t.id, t.project_id, t.worker_id, t.requester_id, t.week_start, t.seconds_worked,
       t.sessions, t.status, t.auto_approve_at, t.disputed_at, t.approved_at, t.approved_by,
       t.paid_seconds, t.paid_cents, t.fee_cents,
       {_WEEK_END_TS} AS week_end,
       p.hourly_rate_cents,
       (SELECT coalesce(sum(s.seconds_worked), 0) FROM work_sessions s
        WHERE s.timesheet_id = t.id AND s.dispute_status IN ('open', 'upheld'))::bigint
           AS disputed_seconds,
       (SELECT coalesce(sum(s.seconds_worked::bigint * s.hourly_rate_cents), 0)::bigint / 3600
        FROM work_sessions s
        WHERE s.timesheet_id = t.id
          AND s.dispute_status IS DISTINCT FROM 'open'
          AND s.dispute_status IS DISTINCT FROM 'upheld')::bigint
           AS undisputed_pay_cents,
       (SELECT count(*) FROM assignments a
        WHERE a.worker_id = t.worker_id AND a.project_id = t.project_id
          AND a.submitted_at >= {_WEEK_START_TS} AND a.submitted_at < {_WEEK_END_TS})
           AS answers_submitted,
       (SELECT count(*) FROM assignments a
        WHERE a.worker_id = t.worker_id AND a.project_id = t.project_id
          AND a.submitted_at >= {_WEEK_START_TS} AND a.submitted_at < {_WEEK_END_TS}
          AND a.status = 'approved')
           AS answers_approved
FROM timesheets t
JOIN projects p ON p.id = t.project_id
"""


@dataclass(frozen=True, slots=True)
class TimesheetRow:
    id: str
    project_id: str
    worker_id: str
    requester_id: str
    week_start: date
    seconds_worked: int
    sessions: int
    status: str
    auto_approve_at: datetime
    disputed_at: datetime | None
    approved_at: datetime | None
    approved_by: str | None
    paid_seconds: int | None
    paid_cents: int
    fee_cents: int
    week_end: datetime
    hourly_rate_cents: int
    disputed_seconds: int
    undisputed_pay_cents: int  # each undisputed session's seconds x its own rate, rounded down
    answers_submitted: int
    answers_approved: int


async def get_timesheet(db: Db, timesheet_id: str) -> TimesheetRow | None:
    return as_row(
        TimesheetRow, await db.fetchrow(_TIMESHEET_SELECT + "WHERE t.id = $1", timesheet_id)
    )


_LIST_FOR_PROJECT = (
    _TIMESHEET_SELECT
    + """WHERE t.project_id = $1 AND ($2::text IS NULL OR t.id < $2)
  AND ($3::text IS NULL OR t.status = $3)
ORDER BY t.id DESC LIMIT $4"""
)
_LIST_FOR_WORKER = (
    _TIMESHEET_SELECT
    + """WHERE t.worker_id = $1 AND ($2::text IS NULL OR t.id < $2)
  AND ($3::text IS NULL OR t.status = $3)
ORDER BY t.id DESC LIMIT $4"""
)


async def list_for_project(
    db: Db, *, project_id: str, before_id: str | None, status: str | None, limit: int
) -> list[TimesheetRow]:
    return as_rows(
        TimesheetRow, await db.fetch(_LIST_FOR_PROJECT, project_id, before_id, status, limit)
    )


async def list_for_worker(
    db: Db, *, worker_id: str, before_id: str | None, status: str | None, limit: int
) -> list[TimesheetRow]:
    return as_rows(
        TimesheetRow, await db.fetch(_LIST_FOR_WORKER, worker_id, before_id, status, limit)
    )


# ---------------------------------------------------------------------------- approval

LOCK_SESSIONS_OF_TIMESHEET_SQL = """
SELECT id FROM work_sessions WHERE timesheet_id = $1 ORDER BY id FOR UPDATE
"""

LOCK_TIMESHEET_SQL = """
SELECT t.id, t.project_id, t.worker_id, t.requester_id, t.status, t.seconds_worked,
       (t.week_start + 7)::timestamp AT TIME ZONE 'UTC' AS week_end,
       p.status AS project_status, p.hourly_rate_cents, p.assignments_per_task,
       EXISTS (SELECT 1 FROM work_sessions s
               WHERE s.timesheet_id = t.id AND s.status = 'open' AND s.expires_at >= $2)
           AS has_live_session
FROM timesheets t JOIN projects p ON p.id = t.project_id
WHERE t.id = $1
FOR UPDATE OF t
"""


@dataclass(frozen=True, slots=True)
class LockedTimesheet:
    id: str
    project_id: str
    worker_id: str
    requester_id: str
    status: str
    seconds_worked: int
    week_end: datetime
    project_status: str
    hourly_rate_cents: int
    assignments_per_task: int
    has_live_session: bool


async def lock_timesheet(db: Writable, timesheet_id: str, now: datetime) -> LockedTimesheet | None:
    await db.execute(LOCK_SESSIONS_OF_TIMESHEET_SQL, timesheet_id)
    return as_row(LockedTimesheet, await db.fetchrow(LOCK_TIMESHEET_SQL, timesheet_id, now))


# The disputes still open when the timesheet is approved stand: their time is not paid.
UPHOLD_OPEN_DISPUTES_SQL = """
WITH upheld AS (
    UPDATE work_sessions SET dispute_status = 'upheld', dispute_resolved_at = $2
    WHERE timesheet_id = $1 AND dispute_status = 'open'
    RETURNING seconds_worked
)
SELECT coalesce(sum(seconds_worked), 0)::bigint FROM upheld
"""

# What approval pays (pay tiers): the sum over the sessions not upheld of their seconds x the
# rate each session was opened at, rounded down to the cent once. The sessions are locked.
PAY_OF_TIMESHEET_SQL = """
SELECT coalesce(sum(seconds_worked::bigint * hourly_rate_cents), 0)::bigint / 3600
FROM work_sessions
WHERE timesheet_id = $1 AND dispute_status IS DISTINCT FROM 'upheld'
"""

LOCK_BUDGET_SQL = """
SELECT reserved_cents, paid_cents, released_cents FROM hourly_budgets
WHERE project_id = $1 FOR UPDATE
"""


@dataclass(frozen=True, slots=True)
class BudgetMoney:
    reserved_cents: int
    paid_cents: int
    released_cents: int

    @property
    def left_cents(self) -> int:
        return self.reserved_cents - self.paid_cents - self.released_cents


async def lock_budget(db: Writable, project_id: str) -> BudgetMoney | None:
    return as_row(BudgetMoney, await db.fetchrow(LOCK_BUDGET_SQL, project_id))


MOVE_BUDGET_MONEY_SQL = """
UPDATE hourly_budgets SET paid_cents = paid_cents + $2, released_cents = released_cents + $3
WHERE project_id = $1
"""

APPROVE_TIMESHEET_SQL = """
UPDATE timesheets
SET status = 'approved', approved_at = $2, approved_by = $3, paid_seconds = $4,
    paid_cents = $5, fee_cents = $6, updated_at = $2
WHERE id = $1 AND status = 'open'
"""

# What the project may still owe on timesheets not yet approved: each one's time at its
# sessions' rates (rounded down, as approval pays) — the fee is added in Python
# (shared/fees.py).
OWED_ON_OPEN_TIMESHEETS_SQL = """
SELECT (SELECT coalesce(sum(s.seconds_worked::bigint * s.hourly_rate_cents), 0)::bigint
        FROM work_sessions s WHERE s.timesheet_id = t.id) / 3600 AS pay_cents
FROM timesheets t
WHERE t.project_id = $1 AND t.status = 'open' AND t.seconds_worked > 0
"""


async def owed_on_open_timesheets(db: Db, project_id: str) -> list[int]:
    return [int(r["pay_cents"]) for r in await db.fetch(OWED_ON_OPEN_TIMESHEETS_SQL, project_id)]


DUE_TIMESHEETS_SQL = """
SELECT id FROM timesheets
WHERE status = 'open' AND auto_approve_at < $1::timestamptz - make_interval(secs => $2::float8)
ORDER BY auto_approve_at, id
LIMIT $3
"""

# What a batch of approvals will lock, taken up front in the order every statement on these
# rows keeps (the work sessions, then the timesheets, then the projects' budget rows, each by
# id), so that two replicas' batches, or a batch and a heartbeat, a dispute or a requester's
# approval, can wait on each other but never in a cycle. Approving one timesheet after another
# would take them class by class per timesheet (sessions, timesheet, budget, then the next
# timesheet's sessions...), and two batches sharing a project's budget row could each hold what
# the other waits for (seen in CI: a deadlock between two replicas' batches).
LOCK_SESSIONS_OF_TIMESHEETS_SQL = """
SELECT id FROM work_sessions WHERE timesheet_id = ANY($1::text[]) ORDER BY id FOR UPDATE
"""
LOCK_TIMESHEETS_SQL = """
SELECT id FROM timesheets WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE
"""
LOCK_BUDGETS_OF_TIMESHEETS_SQL = """
SELECT b.project_id FROM hourly_budgets b
WHERE b.project_id IN (SELECT project_id FROM timesheets WHERE id = ANY($1::text[]))
ORDER BY b.project_id
FOR UPDATE
"""


async def lock_for_approvals(db: Writable, timesheet_ids: list[str]) -> None:
    for sql in (
        LOCK_SESSIONS_OF_TIMESHEETS_SQL,
        LOCK_TIMESHEETS_SQL,
        LOCK_BUDGETS_OF_TIMESHEETS_SQL,
    ):
        await db.execute(sql, timesheet_ids)


# ---------------------------------------------------------------------------- disputes

LOCK_SESSION_FOR_REVIEW_SQL = """
SELECT s.id, s.timesheet_id, s.worker_id, s.status, s.dispute_status, s.dispute_response,
       t.status AS timesheet_status, t.project_id, t.requester_id
FROM work_sessions s JOIN timesheets t ON t.id = s.timesheet_id
WHERE s.id = $1
FOR UPDATE OF s
"""


@dataclass(frozen=True, slots=True)
class SessionForReview:
    id: str
    timesheet_id: str
    worker_id: str
    status: str
    dispute_status: str | None
    dispute_response: str | None
    timesheet_status: str
    project_id: str
    requester_id: str


async def lock_session_for_review(db: Writable, session_id: str) -> SessionForReview | None:
    return as_row(SessionForReview, await db.fetchrow(LOCK_SESSION_FOR_REVIEW_SQL, session_id))


DISPUTE_SESSION_SQL = """
WITH sheet AS (
    UPDATE timesheets SET disputed_at = coalesce(disputed_at, $3), updated_at = $3
    WHERE id = (SELECT timesheet_id FROM work_sessions WHERE id = $1)
)
UPDATE work_sessions
SET dispute_status = 'open', dispute_reason = $2, disputed_at = $3
WHERE id = $1
"""

WITHDRAW_DISPUTE_SQL = """
UPDATE work_sessions SET dispute_status = 'withdrawn', dispute_resolved_at = $2 WHERE id = $1
"""

RESPOND_TO_DISPUTE_SQL = """
UPDATE work_sessions SET dispute_response = $2, responded_at = $3 WHERE id = $1
"""
