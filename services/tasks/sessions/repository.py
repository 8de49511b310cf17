"""SQL of hourly work: sessions, their measured time, the budget counter, the idle sweeps.

Every statement takes "now" as a parameter (services/tasks/clock.py): time is measured on the
server's clock as the service stamps it, never the database's now(), so tests can stand on a
boundary. Lock order, everywhere: the session, then its timesheet, then the project's
`hourly_budgets` row (the one row every session of a project shares, taken last so it is held
for the shortest time), so concurrent events, the sweeps, approvals and close cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.tasks.lifecycle.accept import _PROJECT_FOR_ACCEPT, AcceptEligibility
from shared.database import Db, Writable, as_row, as_rows

SESSION_COLUMNS = """s.id, s.project_id, s.worker_id, s.requester_id, s.timesheet_id, s.week_start,
       s.status, s.started_at, s.last_activity_at, s.expires_at, s.ended_at, s.ended_reason,
       s.seconds_worked, s.activity_events, s.dispute_status, s.dispute_reason, s.disputed_at,
       s.dispute_response, s.responded_at, s.dispute_resolved_at, s.hourly_rate_cents"""


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    project_id: str
    worker_id: str
    requester_id: str
    timesheet_id: str
    week_start: date
    status: str
    started_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    ended_reason: str | None
    seconds_worked: int
    activity_events: int
    dispute_status: str | None
    dispute_reason: str | None
    disputed_at: datetime | None
    dispute_response: str | None
    responded_at: datetime | None
    dispute_resolved_at: datetime | None
    hourly_rate_cents: int  # fixed at open from the worker's level (pay tiers)


@dataclass(frozen=True, slots=True)
class Accrued(SessionRow):
    """A session after an activity event, with the seconds this event added."""

    granted: int


# What opening a session decides on: accept's own read of the project (eligibility: the
# requester's block, the worker's facts for the requirements, the gold tally) plus the hourly
# terms and the budget counter, so a session is admitted by exactly the rules accept applies.
# `hourly_rate_cents` is the worker's: the tier of the level accept's read found (pay tiers).
PROJECT_FOR_SESSION_SQL = f"""
SELECT r.*,
       coalesce(p.level_hourly_rate_cents[r.tier_level + 1], p.hourly_rate_cents)
           AS hourly_rate_cents,
       p.max_seconds_per_worker_per_week,
       p.idle_timeout_seconds, p.auto_approve_seconds,
       b.budget_seconds, b.used_seconds
FROM ({_PROJECT_FOR_ACCEPT}) AS r
JOIN projects p ON p.id = r.id
LEFT JOIN hourly_budgets b ON b.project_id = r.id
"""


@dataclass(frozen=True, slots=True)
class ProjectForSession(AcceptEligibility):
    """Accept's eligibility columns plus the hourly terms and the budget counter."""

    hourly_rate_cents: int | None
    max_seconds_per_worker_per_week: int | None
    idle_timeout_seconds: int | None
    auto_approve_seconds: int
    budget_seconds: int | None
    used_seconds: int | None


async def project_for_session(
    db: Db, *, project_id: str, worker_id: str
) -> ProjectForSession | None:
    record = await db.fetchrow(PROJECT_FOR_SESSION_SQL, project_id, worker_id)
    if record is None:
        return None
    return ProjectForSession(**{k: record[k] for k in ProjectForSession.__dataclass_fields__})


# The week a moment belongs to, and its end, as SQL on a timestamptz parameter.
def _week_end(week_start_sql: str) -> str:
    return f"(({week_start_sql}) + 7)::timestamp AT TIME ZONE 'UTC'"


_END_REASON_AT_EXPIRY = f"""CASE WHEN s.expires_at >= {_week_end("s.week_start")}
    THEN 'week_ended' ELSE 'idle' END"""

# The worker's open session of the project whose idle deadline passed before `$3` ends at that
# deadline, crediting nothing after its last activity (what the idle sweep does to it).
END_EXPIRED_OF_WORKER_SQL = f"""
UPDATE work_sessions s
SET status = 'ended', ended_at = s.expires_at, ended_reason = {_END_REASON_AT_EXPIRY}
WHERE s.project_id = $1 AND s.worker_id = $2 AND s.status = 'open' AND s.expires_at < $3
"""

# One timesheet per worker, project and week: the session being opened counts in it.
TIMESHEET_FOR_SESSION_SQL = """
INSERT INTO timesheets AS t (id, project_id, worker_id, requester_id, week_start, sessions,
                             auto_approve_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::date, 1,
        ($5::date + 7)::timestamp AT TIME ZONE 'UTC' + make_interval(secs => $6::int),
        $7::timestamptz, $7::timestamptz)
ON CONFLICT ON CONSTRAINT uq_timesheets_project_worker_week
DO UPDATE SET sessions = t.sessions + 1, updated_at = EXCLUDED.updated_at
RETURNING t.id, t.seconds_worked, t.status
"""


@dataclass(frozen=True, slots=True)
class SheetForSession:
    id: str
    seconds_worked: int
    status: str


async def timesheet_for_session(
    db: Writable,
    *,
    new_id: str,
    project_id: str,
    worker_id: str,
    requester_id: str,
    week_start: date,
    auto_approve_seconds: int,
    now: datetime,
) -> SheetForSession:
    row = as_row(
        SheetForSession,
        await db.fetchrow(
            TIMESHEET_FOR_SESSION_SQL,
            new_id,
            project_id,
            worker_id,
            requester_id,
            week_start,
            auto_approve_seconds,
            now,
        ),
    )
    assert row is not None
    return row


INSERT_SESSION_SQL = f"""
INSERT INTO work_sessions AS s (id, project_id, worker_id, requester_id, timesheet_id,
                                week_start, status, started_at, last_activity_at, expires_at,
                                created_at, hourly_rate_cents)
VALUES ($1, $2, $3, $4, $5, $6::date, 'open', $7::timestamptz, $7::timestamptz,
        LEAST($7::timestamptz + make_interval(secs => $8::int), {_week_end("$6::date")}),
        $7::timestamptz, $9)
ON CONFLICT (project_id, worker_id) WHERE status = 'open' DO NOTHING
RETURNING {SESSION_COLUMNS}
"""


async def insert_session(
    db: Writable,
    *,
    session_id: str,
    project_id: str,
    worker_id: str,
    requester_id: str,
    timesheet_id: str,
    week_start: date,
    now: datetime,
    idle_timeout_seconds: int,
    hourly_rate_cents: int,
) -> SessionRow | None:
    """None when the worker already has an open session of the project. `hourly_rate_cents`:
    what its time is paid at, fixed now."""
    return as_row(
        SessionRow,
        await db.fetchrow(
            INSERT_SESSION_SQL,
            session_id,
            project_id,
            worker_id,
            requester_id,
            timesheet_id,
            week_start,
            now,
            idle_timeout_seconds,
            hourly_rate_cents,
        ),
    )


# ------------------------------------------------------------------------ an activity event

# One activity event (accept, submit) on the worker's open session of a project, in ONE
# statement, so it is atomic on its own and the project's budget row is locked only for the
# rest of this statement and its commit:
# - `old`: the session, locked. It must be open, in a published project (pausing and closing
#   end a project's sessions; this guards an event that read the project before that commit),
#   and not idle at `$3` (an event after the idle
#   deadline finds nothing: the session is over, whether or not the sweep has ended it yet, so
#   an event racing the sweep gets the same answer either way). `gap`: the whole seconds since
#   the last event (a clock stamp older than the last event counts 0). The seconds' fractions
#   carry over: the new last event is the old one + the whole seconds, so nothing is lost to
#   rounding over many events.
# - `sheet`: the week's timesheet, locked: the weekly cap is checked on its current total.
# - `wanted`: the gap, cut at the cap.
# - `budget_before` / `granted`: the project's budget row, locked only if there is time to
#   add, and the seconds it still has; the grant is the least of the two. This is one of the
#   two places time is taken from the budget (the other: SESSION_EVENTS_SQL, the same rules
#   for many sessions at once), and the CHECK used <= budget backs it: concurrent
#   sessions racing for the last seconds are serialised on this row and each gets what is
#   left, never more.
# - `used`, `counted`: the budget and the timesheet move by the grant.
# - the session moves: its last counted instant (`last_activity_at`, the previous one + the
#   whole seconds counted, so fractions carry), its idle deadline (this event + the idle
#   timeout, at the latest the week's end; never earlier than it was), events and seconds;
#   it ends when the cap is reached (`weekly_hours_exhausted`) or the budget is used up
#   (`budget_exhausted`).
ACTIVITY_BY_PROJECT_SQL = f"""
WITH old AS (
    SELECT s.id, s.timesheet_id, s.project_id, s.last_activity_at AS prev,
           GREATEST(0, floor(extract(epoch FROM ($3::timestamptz - s.last_activity_at))))::bigint
               AS gap,
           p.max_seconds_per_worker_per_week AS cap, p.idle_timeout_seconds AS idle,
           {_week_end("s.week_start")} AS week_end
    FROM work_sessions s
    JOIN projects p ON p.id = s.project_id
    WHERE s.project_id = $1 AND s.worker_id = $2 AND s.status = 'open' AND s.expires_at >= $3
      AND p.status = 'published'
    FOR UPDATE OF s
), sheet AS (
    SELECT t.id, t.seconds_worked FROM timesheets t
    WHERE t.id = (SELECT timesheet_id FROM old)
    FOR UPDATE
), wanted AS (
    SELECT GREATEST(0, LEAST(old.gap, coalesce(old.cap - sheet.seconds_worked, old.gap)))
               AS seconds
    FROM old CROSS JOIN sheet
), budget_before AS (
    SELECT b.project_id, b.budget_seconds - b.used_seconds AS remaining
    FROM hourly_budgets b
    WHERE b.project_id = (SELECT project_id FROM old) AND (SELECT seconds FROM wanted) > 0
    FOR UPDATE
), granted AS (
    SELECT coalesce(LEAST(w.seconds, bb.remaining), 0) AS seconds,
           bb.remaining - LEAST(w.seconds, bb.remaining) AS remaining_after
    FROM wanted w LEFT JOIN budget_before bb ON true
), used AS (
    UPDATE hourly_budgets b
    SET used_seconds = b.used_seconds + g.seconds,
        exhausted_at = CASE WHEN g.remaining_after = 0 THEN coalesce(b.exhausted_at, $3)
                            ELSE b.exhausted_at END
    FROM granted g
    WHERE b.project_id = (SELECT project_id FROM budget_before)
    RETURNING b.used_seconds
), counted AS (
    UPDATE timesheets t SET seconds_worked = t.seconds_worked + g.seconds, updated_at = $3
    FROM granted g
    WHERE t.id = (SELECT id FROM sheet) AND g.seconds > 0
    RETURNING t.seconds_worked
), moved AS (
    SELECT old.id,
           old.prev + make_interval(secs => old.gap) AS last_event,
           CASE WHEN old.cap IS NOT NULL AND sheet.seconds_worked + g.seconds >= old.cap
                     THEN 'weekly_hours_exhausted'
                WHEN g.remaining_after = 0 THEN 'budget_exhausted'
           END AS end_reason,
           old.idle, old.week_end, g.seconds AS granted
    FROM old CROSS JOIN sheet CROSS JOIN granted g
)
UPDATE work_sessions s
SET last_activity_at = GREATEST(s.last_activity_at, m.last_event),
    expires_at = GREATEST(s.expires_at,
                          LEAST($3::timestamptz + make_interval(secs => m.idle), m.week_end)),
    activity_events = s.activity_events + 1,
    seconds_worked = s.seconds_worked + m.granted,
    status = CASE WHEN m.end_reason IS NULL THEN 'open' ELSE 'ended' END,
    ended_reason = m.end_reason,
    ended_at = CASE WHEN m.end_reason IS NULL THEN NULL ELSE $3 END
FROM moved m
WHERE s.id = m.id
RETURNING {SESSION_COLUMNS}, m.granted
"""


async def record_work_activity(
    db: Writable, *, worker_id: str, project_id: str, now: datetime
) -> Accrued | None:
    """An accept or submit as the event of the worker's open, live session of the project; None
    when there is none (no session, ended, or idle past its deadline)."""
    return as_row(Accrued, await db.fetchrow(ACTIVITY_BY_PROJECT_SQL, project_id, worker_id, now))


# Events on sessions named by id (heartbeats, the worker's end): the statement above for MANY
# sessions at once, one event per session, so that concurrent heartbeats share one statement
# and one commit (service.session_events, shared/coalescing.py) instead of one each. The
# same rules, per session; what changes is that several sessions may draw on one budget row:
# - `ev`: the events ($1 session ids, unique; $2 the caller of each; $3 each one's clock
#   stamp; $4 whether it is the worker's end).
# - `locked`: the named sessions not ended, locked by primary key. Ended sessions are never
#   locked here: a timesheet's approval holds its (ended) sessions, and a stale heartbeat must
#   not hold one while it waits for a timesheet or budget row. `ended_at IS NULL` says "not
#   ended" (a CHECK ties it to `status`) in a form the open sessions' partial index does not
#   match: with `status = 'open'`, a generic plan made on a small table walked that index and
#   merged, where the primary key probes each id. `old` then keeps the caller's open, live
#   ones, read from the locked rows' latest versions.
# - `terms`: their projects' hourly terms, by primary key. MATERIALIZED keeps `status =
#   'published'` out of that read, for the same reason: the published projects' partial index
#   would otherwise be walked once per session.
# - `locked`, `sheet`, `budget_before` lock in one order every statement here keeps: all the
#   sessions, then all their timesheets, then the budget rows, each class by id. Two such
#   statements (replicas), or one and ACTIVITY_BY_PROJECT_SQL (one of each class), can wait on
#   each other but never in a cycle.
# - `wanted`: each session's gap cut at its timesheet's cap (a worker has one open session per
#   project, so each timesheet appears once).
# - `before_each` / `granted`: the sessions of one project draw on its budget in id order:
#   each finds what the earlier ones left (`left_raw`, the remaining seconds less what the
#   earlier ones wanted) and gets the least of that and its gap, so the grants of a statement
#   never add up to more than the budget had, exactly as if the events had come one by one. A
#   session that wanted nothing does not touch the budget (nor end for it).
# - `used`: each budget row moves once by its sessions' grants; `exhausted_at` is the stamp of
#   the first event that found it empty.
SESSION_EVENTS_SQL = f"""
WITH ev AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::boolean[])
        AS e(session_id, worker_id, at, ending)
), locked AS (
    SELECT s.id, s.worker_id, s.status, s.expires_at, s.timesheet_id, s.project_id,
           s.last_activity_at, s.week_start
    FROM work_sessions s
    WHERE s.id = ANY($1::text[]) AND s.ended_at IS NULL
    ORDER BY s.id
    FOR UPDATE
), terms AS MATERIALIZED (
    SELECT p.id, p.status, p.max_seconds_per_worker_per_week, p.idle_timeout_seconds
    FROM projects p
    WHERE p.id IN (SELECT project_id FROM locked)
), old AS (
    SELECT s.id, s.timesheet_id, s.project_id, s.last_activity_at AS prev, ev.at, ev.ending,
           GREATEST(0, floor(extract(epoch FROM (ev.at - s.last_activity_at))))::bigint AS gap,
           p.max_seconds_per_worker_per_week AS cap, p.idle_timeout_seconds AS idle,
           {_week_end("s.week_start")} AS week_end
    FROM locked s
    JOIN ev ON ev.session_id = s.id
    JOIN terms p ON p.id = s.project_id
    WHERE s.worker_id = ev.worker_id AND s.status = 'open' AND s.expires_at >= ev.at
      AND p.status = 'published'
), sheet AS (
    SELECT t.id, t.seconds_worked FROM timesheets t
    WHERE t.id IN (SELECT timesheet_id FROM old)
    ORDER BY t.id
    FOR UPDATE
), wanted AS (
    SELECT old.id, old.project_id, old.timesheet_id, old.at, sheet.seconds_worked AS sheet_before,
           GREATEST(0, LEAST(old.gap, coalesce(old.cap - sheet.seconds_worked, old.gap)))
               AS seconds
    FROM old JOIN sheet ON sheet.id = old.timesheet_id
), budget_before AS (
    SELECT b.project_id, b.budget_seconds - b.used_seconds AS remaining
    FROM hourly_budgets b
    WHERE b.project_id IN (SELECT project_id FROM wanted WHERE seconds > 0)
    ORDER BY b.project_id
    FOR UPDATE
), before_each AS (
    SELECT w.*, bb.project_id IS NOT NULL AS budgeted,
           bb.remaining - coalesce(sum(w.seconds) OVER (
               PARTITION BY w.project_id ORDER BY w.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS left_raw
    FROM wanted w
    LEFT JOIN budget_before bb ON bb.project_id = w.project_id AND w.seconds > 0
), granted AS (
    SELECT id, project_id, timesheet_id, at, sheet_before,
           CASE WHEN budgeted THEN LEAST(seconds, GREATEST(0, left_raw)) ELSE seconds END
               AS seconds,
           CASE WHEN budgeted THEN GREATEST(0, left_raw) - LEAST(seconds, GREATEST(0, left_raw))
           END AS remaining_after
    FROM before_each
), used AS (
    UPDATE hourly_budgets b
    SET used_seconds = b.used_seconds + d.seconds,
        exhausted_at = coalesce(b.exhausted_at, d.emptied_at)
    FROM (SELECT project_id, sum(seconds) AS seconds,
                 min(at) FILTER (WHERE remaining_after = 0) AS emptied_at
          FROM granted WHERE remaining_after IS NOT NULL
          GROUP BY project_id) d
    WHERE b.project_id = d.project_id
    RETURNING b.used_seconds
), counted AS (
    UPDATE timesheets t SET seconds_worked = t.seconds_worked + g.seconds, updated_at = g.at
    FROM granted g
    WHERE t.id = g.timesheet_id AND g.seconds > 0
    RETURNING t.seconds_worked
), moved AS (
    SELECT old.id, old.at,
           old.prev + make_interval(secs => old.gap) AS last_event,
           CASE WHEN old.cap IS NOT NULL AND g.sheet_before + g.seconds >= old.cap
                     THEN 'weekly_hours_exhausted'
                WHEN g.remaining_after = 0 THEN 'budget_exhausted'
                WHEN old.ending THEN 'worker'
           END AS end_reason,
           old.idle, old.week_end, g.seconds AS granted
    FROM old JOIN granted g ON g.id = old.id
)
UPDATE work_sessions s
SET last_activity_at = GREATEST(s.last_activity_at, m.last_event),
    expires_at = GREATEST(s.expires_at,
                          LEAST(m.at + make_interval(secs => m.idle), m.week_end)),
    activity_events = s.activity_events + 1,
    seconds_worked = s.seconds_worked + m.granted,
    status = CASE WHEN m.end_reason IS NULL THEN 'open' ELSE 'ended' END,
    ended_reason = m.end_reason,
    ended_at = CASE WHEN m.end_reason IS NULL THEN NULL ELSE m.at END
FROM moved m
WHERE s.id = m.id
RETURNING {SESSION_COLUMNS}, m.granted
"""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """An activity event on a session named by id: who sends it, when (the server's clock),
    and whether the worker ends the session with it."""

    session_id: str
    worker_id: str
    at: datetime
    end: bool = False


async def record_session_events(db: Writable, events: list[SessionEvent]) -> dict[str, Accrued]:
    """Each event on its session, all in one statement (session ids unique); the sessions that
    took theirs, by id. A session missing from the answer found no event: unknown, someone
    else's, ended, or idle past its deadline."""
    records = await db.fetch(
        SESSION_EVENTS_SQL,
        [e.session_id for e in events],
        [e.worker_id for e in events],
        [e.at for e in events],
        [e.end for e in events],
    )
    return {row.id: row for row in as_rows(Accrued, records)}


# ------------------------------------------------------------------------------- reads

GET_SESSION_SQL = f"SELECT {SESSION_COLUMNS} FROM work_sessions s WHERE s.id = $1"


async def get_session(db: Db, session_id: str) -> SessionRow | None:
    return as_row(SessionRow, await db.fetchrow(GET_SESSION_SQL, session_id))


OPEN_SESSION_OF_SQL = f"""
SELECT {SESSION_COLUMNS} FROM work_sessions s
WHERE s.project_id = $1 AND s.worker_id = $2 AND s.status = 'open'
"""


async def open_session_of(db: Db, *, project_id: str, worker_id: str) -> SessionRow | None:
    return as_row(SessionRow, await db.fetchrow(OPEN_SESSION_OF_SQL, project_id, worker_id))


LATEST_SESSION_OF_SQL = f"""
SELECT {SESSION_COLUMNS} FROM work_sessions s
WHERE s.worker_id = $2 AND s.project_id = $1
ORDER BY s.id DESC LIMIT 1
"""


async def latest_session_of(db: Db, *, project_id: str, worker_id: str) -> SessionRow | None:
    return as_row(SessionRow, await db.fetchrow(LATEST_SESSION_OF_SQL, project_id, worker_id))


LIST_WORKER_SESSIONS_SQL = f"""
SELECT {SESSION_COLUMNS} FROM work_sessions s
WHERE s.worker_id = $1 AND ($2::text IS NULL OR s.id < $2)
  AND ($3::text IS NULL OR s.project_id = $3) AND ($4::text IS NULL OR s.status = $4)
ORDER BY s.id DESC LIMIT $5
"""


async def list_worker_sessions(
    db: Db,
    *,
    worker_id: str,
    before_id: str | None,
    limit: int,
    project_id: str | None,
    status: str | None,
) -> list[SessionRow]:
    return as_rows(
        SessionRow,
        await db.fetch(LIST_WORKER_SESSIONS_SQL, worker_id, before_id, project_id, status, limit),
    )


LIST_TIMESHEET_SESSIONS_SQL = f"""
SELECT {SESSION_COLUMNS} FROM work_sessions s WHERE s.timesheet_id = $1 ORDER BY s.id
"""


async def timesheet_sessions(db: Db, timesheet_id: str) -> list[SessionRow]:
    return as_rows(SessionRow, await db.fetch(LIST_TIMESHEET_SESSIONS_SQL, timesheet_id))


# ------------------------------------------------------------------------------- the sweeps

# Open sessions past their idle deadline (or their week's end) end at that deadline; nothing
# after their last activity is paid. Replica-safe: SKIP LOCKED claims, and the state re-checked
# on the locked row (an event that moved the deadline since is honoured). It walks the open
# sessions (uq_work_sessions_open): `expires_at` is deliberately not indexed, so that a
# heartbeat's update is HOT (shared/models/hourly.py).
END_IDLE_SESSIONS_SQL = f"""
WITH due AS (
    SELECT id FROM work_sessions
    WHERE status = 'open' AND expires_at < $1::timestamptz - make_interval(secs => $2::float8)
    ORDER BY expires_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE work_sessions s
SET status = 'ended', ended_at = s.expires_at, ended_reason = {_END_REASON_AT_EXPIRY}
FROM due
WHERE s.id = due.id AND s.status = 'open' AND s.expires_at < $1
"""

# Open sessions of projects whose budget is used up end now (each session's own next event
# would end it too; this ends the ones left alone).
END_EXHAUSTED_SESSIONS_SQL = """
WITH due AS (
    SELECT s.id FROM hourly_budgets b
    JOIN work_sessions s ON s.project_id = b.project_id AND s.status = 'open'
    WHERE b.exhausted_at IS NOT NULL AND b.used_seconds >= b.budget_seconds
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE work_sessions s
SET status = 'ended', ended_at = GREATEST(s.last_activity_at, $1), ended_reason = 'budget_exhausted'
FROM due
WHERE s.id = due.id AND s.status = 'open'
"""

# Close and pause: every open session of the project ends, with reason $3 (the caller holds
# the project row).
END_PROJECT_SESSIONS_SQL = """
UPDATE work_sessions s
SET status = 'ended', ended_at = GREATEST(s.last_activity_at, $2), ended_reason = $3
WHERE s.project_id = $1 AND s.status = 'open'
"""


def rows_changed(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])
