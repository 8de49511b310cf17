"""Work sessions of hourly projects: open, activity (heartbeat, accept, submit), end, reads,
and the sweeps that end sessions left alone.

Time is measured by the server only. A session accrues the whole seconds between consecutive
activity events when the gap is at most the project's idle timeout; an event after that
deadline finds the session over (idle: the sweep ends it at its deadline, crediting nothing
after its last event), so a late heartbeat and the sweep give the same result whichever runs
first. A session belongs to the ISO week (UTC) it was opened in and is over at that week's end.

Caps: the week's timesheet is the worker's counter for `max_hours_per_worker_per_week`; the
project's `hourly_budgets` row is the counter for `budget_hours`. Both are taken in the one
statement of an event (repository.ACTIVITY_BY_PROJECT_SQL for accept and submit,
SESSION_EVENTS_SQL for heartbeats and the end): the grant is the gap cut at the cap and at what
the budget has left, so the cap is met to the second and the budget is never exceeded, however
many sessions race for its last seconds.

Heartbeats are most of an hourly project's requests, so they are coalesced: the ones that
arrive while a heartbeat statement is in flight share the next one (`session_events`,
shared/coalescing.py), each session's event applied as if it had come alone.

The event that reaches a limit ends its session (`weekly_hours_exhausted`, `budget_exhausted`);
later calls on it are refused with that code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from services.tasks.lifecycle.accept import check_eligibility, check_gold_accuracy
from services.tasks.sessions import repository
from services.tasks.sessions.repository import Accrued, SessionEvent, SessionRow
from services.tasks.sessions.schemas import SessionDispute, WorkSessionRead
from shared.coalescing import Coalescer
from shared.database import Database, Db, Writable, WriteDb
from shared.errors import AppError, Conflict, Forbidden, NotFound
from shared.ids import new_id
from shared.pagination import Page, PageParams


class SessionNotFound(NotFound):
    code = "not_found"


class ProjectNotAvailable(NotFound):
    code = "no_work_available"


class NotHourly(Conflict):
    code = "not_hourly"


class SessionAlreadyOpen(Conflict):
    code = "session_already_open"


class SessionEnded(Conflict):
    code = "session_ended"


class WorkSessionRequired(Conflict):
    code = "work_session_required"


class WeeklyHoursExhausted(Forbidden):
    code = "weekly_hours_exhausted"


class BudgetExhausted(Conflict):
    code = "budget_exhausted"


def week_start_of(moment: datetime) -> date:
    """The Monday (UTC) of the ISO week `moment` falls in."""
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def session_read(row: SessionRow) -> WorkSessionRead:
    dispute = None
    if row.dispute_status is not None:
        assert row.dispute_reason is not None and row.disputed_at is not None
        dispute = SessionDispute(
            status=row.dispute_status,  # type: ignore[arg-type]
            reason=row.dispute_reason,
            disputed_at=row.disputed_at,
            response=row.dispute_response,
            responded_at=row.responded_at,
            resolved_at=row.dispute_resolved_at,
        )
    return WorkSessionRead(
        id=row.id,
        project_id=row.project_id,
        worker_id=row.worker_id,
        timesheet_id=row.timesheet_id,
        week_start=row.week_start,
        status=row.status,  # type: ignore[arg-type]
        started_at=row.started_at,
        last_activity_at=row.last_activity_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        ended_reason=row.ended_reason,  # type: ignore[arg-type]
        seconds_worked=row.seconds_worked,
        activity_events=row.activity_events,
        dispute=dispute,
        hourly_rate=row.hourly_rate_cents,
    )


def _weekly_cap_error(cap_seconds: int | None) -> WeeklyHoursExhausted:
    hours = "" if cap_seconds is None else f" ({cap_seconds / 3600:g} h)"
    return WeeklyHoursExhausted(
        f"You reached this project's weekly hours{hours}; work resumes next ISO week (UTC)."
    )


def _budget_error() -> BudgetExhausted:
    return BudgetExhausted("This project's budget of hours is used up.")


async def open_session(
    db: WriteDb, *, worker_id: str, project_id: str, now: datetime
) -> WorkSessionRead:
    """Admit the worker by accept's rules, then the caps, then one open session per worker and
    project (409 `session_already_open`, naming it)."""
    project = await repository.project_for_session(db, project_id=project_id, worker_id=worker_id)
    if project is None or project.status != "published":
        raise ProjectNotAvailable("This project has no work available.")
    if project.pay_model != "hourly":
        raise NotHourly("This project pays per answer: accept its tasks, no session needed.")
    check_eligibility(project)
    check_gold_accuracy(project)
    assert project.idle_timeout_seconds is not None and project.hourly_rate_cents is not None
    if (
        project.budget_seconds is not None
        and project.used_seconds is not None
        and project.used_seconds >= project.budget_seconds
    ):
        raise _budget_error()
    # A session of this worker left idle past its deadline is over: end it as the sweep would,
    # so it does not stand in the way of the new one.
    await db.execute(repository.END_EXPIRED_OF_WORKER_SQL, project_id, worker_id, now)
    week = week_start_of(now)
    sheet = await repository.timesheet_for_session(
        db,
        new_id=new_id(),
        project_id=project_id,
        worker_id=worker_id,
        requester_id=project.requester_id,
        week_start=week,
        auto_approve_seconds=project.auto_approve_seconds,
        now=now,
    )
    cap = project.max_seconds_per_worker_per_week
    if cap is not None and sheet.seconds_worked >= cap:
        raise _weekly_cap_error(cap)
    if sheet.status != "open":
        raise Conflict("This week's timesheet is already approved.", code="timesheet_closed")
    row = await repository.insert_session(
        db,
        session_id=new_id(),
        project_id=project_id,
        worker_id=worker_id,
        requester_id=project.requester_id,
        timesheet_id=sheet.id,
        week_start=week,
        now=now,
        idle_timeout_seconds=project.idle_timeout_seconds,
        hourly_rate_cents=project.hourly_rate_cents,
    )
    if row is None:
        current = await repository.open_session_of(db, project_id=project_id, worker_id=worker_id)
        raise SessionAlreadyOpen(
            "You already have an open session in this project; keep it alive with heartbeats "
            "or end it first.",
            extra={"session_id": current.id if current is not None else None},
        )
    return session_read(row)


def _refusal(row: SessionRow | None) -> AppError:
    """Why an event found no live session: the error that says so."""
    if row is None:
        return SessionNotFound("Work session not found.")
    if row.ended_reason == "weekly_hours_exhausted":
        return _weekly_cap_error(None)
    if row.ended_reason == "budget_exhausted":
        return _budget_error()
    ended = "idle" if row.status == "open" else row.ended_reason
    return SessionEnded(
        f"This work session has ended ({ended}); open a new one to keep working.",
        extra={"session_id": row.id, "ended_reason": ended},
    )


async def heartbeat(
    db: Writable, *, worker_id: str, session_id: str, now: datetime, end: bool = False
) -> WorkSessionRead:
    """An activity event on the worker's own session (`end`: and the worker ends it), on the
    request's own connection (an Idempotency-Key, or the worker's end). Someone else's session
    is a 404; an ended or idle one a 409 (403/409 with the limit's code when a limit ended
    it)."""
    event = SessionEvent(session_id, worker_id, now, end)
    row = (await repository.record_session_events(db, [event])).get(session_id)
    if row is None:
        raise _refusal(await _own_session(db, worker_id=worker_id, session_id=session_id))
    return session_read(row)


SessionEvents = Coalescer[str, SessionEvent, Accrued]


def session_events(database: Callable[[], Database], *, max_batch: int) -> SessionEvents:
    """Heartbeats of a process, coalesced: the ones that arrive while a statement is in flight
    go together in the next (shared/coalescing.py; the statement: SESSION_EVENTS_SQL), on an
    autocommit connection of the hot pool. `database`: the app's, once its lifespan opened
    it."""

    async def record(events: Sequence[SessionEvent]) -> dict[str, Accrued]:
        async with database().autocommit(hot=True) as db:
            return await repository.record_session_events(db, list(events))

    return Coalescer(
        record, key=lambda event: event.session_id, max_batch=max_batch, name="heartbeat"
    )


async def coalesced_heartbeat(
    events: SessionEvents, database: Database, *, worker_id: str, session_id: str, now: datetime
) -> WorkSessionRead:
    """A heartbeat without an Idempotency-Key: the same event and answers as `heartbeat`, in
    the statement it shares with the other heartbeats in flight. Only a refusal reads (the
    session, on a connection of its own, to say why)."""
    row = await events.submit(SessionEvent(session_id, worker_id, now))
    if row is None:
        async with database.autocommit(hot=True) as db:
            found = await _own_session(db, worker_id=worker_id, session_id=session_id)
        raise _refusal(found)
    return session_read(row)


async def _own_session(db: Db, *, worker_id: str, session_id: str) -> SessionRow | None:
    found = await repository.get_session(db, session_id)
    return found if found is not None and found.worker_id == worker_id else None


async def activity_for_work(
    db: Writable, *, worker_id: str, project_id: str, now: datetime, what: str
) -> Accrued | None:
    """Accept and submit in an hourly project: they need the worker's open session there and
    count as its activity. Refused as the session's state says (no session at all: 409
    `work_session_required`). An accept whose event reached a limit is refused with the
    limit's code; its time was worked and stays counted (without an Idempotency-Key: one
    statement, committed alone). A submit whose session the requester ended (the project was
    paused or closed) is taken without counting time (None): the answer was accepted inside a
    session and the worker did nothing to lose it."""
    row = await repository.record_work_activity(
        db, worker_id=worker_id, project_id=project_id, now=now
    )
    if row is None:
        latest = await repository.latest_session_of(db, project_id=project_id, worker_id=worker_id)
        if (
            what == "submit"
            and latest is not None
            and latest.ended_reason in ("project_paused", "project_closed")
        ):
            return None
        if latest is None or latest.ended_reason in (None, "worker", "idle", "week_ended"):
            raise WorkSessionRequired(
                f"To {what} in an hourly project, open a work session first "
                f"(POST /v1/work/projects/{project_id}/sessions).",
            )
        raise _refusal(latest)
    if row.status == "ended" and what == "accept" and row.ended_reason != "worker":
        raise _refusal(row)
    return row


async def get_own_session(db: Db, *, worker_id: str, session_id: str) -> WorkSessionRead:
    row = await repository.get_session(db, session_id)
    if row is None or row.worker_id != worker_id:
        raise SessionNotFound("Work session not found.")
    return session_read(row)


async def list_own_sessions(
    db: Db,
    *,
    worker_id: str,
    page: PageParams,
    project_id: str | None,
    status: str | None,
) -> Page[WorkSessionRead]:
    rows = await repository.list_worker_sessions(
        db,
        worker_id=worker_id,
        before_id=page.before,
        limit=page.fetch,
        project_id=project_id,
        status=status,
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=[session_read(r) for r in kept], next_cursor=next_cursor)


# ----------------------------------------------------------------------------- the sweeps


async def end_idle_sessions(db: WriteDb, *, now: datetime, limit: int, grace_seconds: float) -> int:
    status = await db.execute(repository.END_IDLE_SESSIONS_SQL, now, grace_seconds, limit)
    return repository.rows_changed(status)


async def end_exhausted_sessions(db: WriteDb, *, now: datetime, limit: int) -> int:
    status = await db.execute(repository.END_EXHAUSTED_SESSIONS_SQL, now, limit)
    return repository.rows_changed(status)


async def end_project_sessions(
    db: WriteDb,
    *,
    project_id: str,
    now: datetime,
    reason: Literal["project_closed", "project_paused"],
) -> int:
    status = await db.execute(repository.END_PROJECT_SESSIONS_SQL, project_id, now, reason)
    return repository.rows_changed(status)
