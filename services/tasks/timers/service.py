"""The timers: sweeps that act on due rows, run by every tasks process.

The sweeps, each a loop of batches:

- `assignment_deadlines`: accepted assignments past their deadline expire and their slots
  reopen (or, in a closed project or an expired task, their money is released);
- `auto_approvals`: submitted assignments past `auto_approve_at` are approved exactly like a
  manual approval (slot consumed, stats counted, payout enqueued in the same transaction);
- `task_lifetimes`: open tasks past their expiry (their own `expires_at`, or their project's
  `tasks_expire_at` for tasks uploaded before publish) expire and their open slots' money is
  released;
- `outbox_retention`: delivered outbox messages older than the retention are deleted;
- `pay_floor_settlements`: per-answer projects with a pay floor whose week (or close) is due are
  settled (services/tasks/pay_floor: top-ups and the release of the unused worst case, through
  the outbox);
- `requester_scorecards`: the discovery scorecard of each requester with published work is
  recomputed once it is older than its max age (services/tasks/discovery).

Exactly once with any number of replicas: a batch is one transaction that claims its rows with
`FOR UPDATE SKIP LOCKED` (two replicas never hold the same row; each takes the next due rows),
re-checks the state on the locked row in the statement that changes it, and writes every effect
(slot counters, stats, outbox messages for payments) before the one commit. A replica that dies
mid-batch rolls the whole batch back and the rows are due again for whoever comes next; a
committed batch is never repeated because its rows no longer match. Payments acts once per
outbox key on top of that.

Throughput: a batch is a constant number of set-based statements whatever its size, and a sweep
whose batch came back full starts the next one at once; only an idle sweep sleeps for the poll
interval. The due rows come from partial indexes, so an empty sweep is an index probe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from fastapi import FastAPI

from services.tasks.clock import Clock, utcnow
from services.tasks.discovery import service as discovery
from services.tasks.lifecycle import task_lifetime
from services.tasks.lifecycle.auto_approve import auto_approve_due
from services.tasks.lifecycle.expire import expire_overdue_assignments
from services.tasks.pay_floor import service as pay_floor
from services.tasks.sessions import service as sessions
from services.tasks.timers import repository
from services.tasks.timers.schemas import SweepStats, TimerStats
from services.tasks.timesheets import service as timesheets
from shared.database import Database, Db, WriteDb, as_row
from shared.metrics import TIMER_ITEMS

log = logging.getLogger("tasks.timers")

SweepName = Literal[
    "assignment_deadlines",
    "auto_approvals",
    "task_lifetimes",
    "outbox_retention",
    "pay_floor_settlements",
    "work_sessions",
    "timesheet_approvals",
    "requester_scorecards",
]
SWEEPS: tuple[SweepName, ...] = (
    "assignment_deadlines",
    "auto_approvals",
    "task_lifetimes",
    "outbox_retention",
    "pay_floor_settlements",
    "work_sessions",
    "timesheet_approvals",
    "requester_scorecards",
)
# Sweeps whose batches may write outbox messages: the deliverer is woken after they commit.
_MOVES_MONEY: frozenset[SweepName] = frozenset(
    {
        "assignment_deadlines",
        "auto_approvals",
        "task_lifetimes",
        "pay_floor_settlements",
        "timesheet_approvals",
    }
)


async def expire_due_assignments(db: WriteDb, *, limit: int, grace_seconds: float) -> int:
    return await expire_overdue_assignments(db, limit, grace_seconds=grace_seconds)


async def expire_due_tasks(db: WriteDb, *, limit: int, grace_seconds: float) -> int:
    expired, _released_cents = await task_lifetime.expire_due_tasks(
        db, limit=limit, grace_seconds=grace_seconds
    )
    return expired


async def end_due_sessions(db: WriteDb, *, now: datetime, limit: int, grace_seconds: float) -> int:
    """Work sessions left alone: idle past their deadline (or their week's end), or open in a
    project whose budget is used up (services/tasks/sessions)."""
    ended = await sessions.end_idle_sessions(db, now=now, limit=limit, grace_seconds=grace_seconds)
    if ended < limit:
        ended += await sessions.end_exhausted_sessions(db, now=now, limit=limit - ended)
    return ended


async def prune_outbox(db: WriteDb, *, limit: int, retention_seconds: float) -> int:
    return await repository.prune_delivered_outbox(
        db, limit=limit, retention_seconds=retention_seconds
    )


_BACKLOG = """
SELECT
    (SELECT count(*) FROM assignments
     WHERE status = 'accepted' AND deadline <= now() - make_interval(secs => $1))
        AS assignment_deadlines,
    (SELECT count(*) FROM assignments
     WHERE status = 'submitted' AND auto_approve_at <= now() - make_interval(secs => $1))
        AS auto_approvals,
    (SELECT count(*) FROM tasks
     WHERE status = 'open' AND expires_at <= now() - make_interval(secs => $1))
    + (SELECT count(*) FROM tasks
       WHERE status = 'open' AND expires_at IS NULL
         AND project_id = ANY (ARRAY(
             SELECT id FROM projects
             WHERE tasks_expire_at <= now() - make_interval(secs => $1)
               AND tasks_expiry_swept_at IS NULL)))
        AS task_lifetimes,
    (SELECT count(*) FROM outbox
     WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $2))
        AS outbox_retention,
    (SELECT count(*) FROM pay_floors WHERE finished_at IS NULL AND next_settlement_at <= now())
        AS pay_floor_settlements,
    (SELECT count(*) FROM work_sessions
     WHERE status = 'open' AND expires_at < $3::timestamptz - make_interval(secs => $1::float8))
    + (SELECT count(*) FROM hourly_budgets b
       JOIN work_sessions s ON s.project_id = b.project_id AND s.status = 'open'
       WHERE b.exhausted_at IS NOT NULL)
        AS work_sessions,
    (SELECT count(*) FROM timesheets
     WHERE status = 'open'
       AND auto_approve_at < $3::timestamptz - make_interval(secs => $1::float8))
        AS timesheet_approvals,
    (SELECT count(*) FROM (SELECT DISTINCT p.requester_id FROM projects p
                           WHERE p.status = 'published') r
     WHERE NOT EXISTS (SELECT 1 FROM requester_scorecards s
                       WHERE s.requester_id = r.requester_id
                         AND s.refreshed_at >= now() - make_interval(secs => $4)))
        AS requester_scorecards
"""


@dataclass(frozen=True, slots=True)
class Backlog:
    assignment_deadlines: int
    auto_approvals: int
    task_lifetimes: int
    outbox_retention: int
    pay_floor_settlements: int
    work_sessions: int
    timesheet_approvals: int
    requester_scorecards: int


async def backlog(
    db: Db,
    *,
    grace_seconds: float,
    retention_seconds: float,
    now: datetime | None = None,
    scorecard_max_age_seconds: float = 60.0,
) -> dict[str, int]:
    """Items due right now per sweep (each count walks only its partial index's due range;
    hourly work's against `now`, its clock)."""
    row = as_row(
        Backlog,
        await db.fetchrow(
            _BACKLOG, grace_seconds, retention_seconds, now or utcnow(), scorecard_max_age_seconds
        ),
    )
    assert row is not None  # counts always have a row
    return {name: int(getattr(row, name)) for name in SWEEPS}


@dataclass
class _SweepState:
    acted: int = 0
    batches: int = 0
    failures: int = 0
    last_error: str | None = None
    last_batch_at: datetime | None = None


@dataclass
class TimerRunner:
    """Runs the sweeps in this process until stopped; safe next to any number of replicas."""

    database: Database
    batch_size: int
    poll_interval_seconds: float
    grace_seconds: float
    retention_seconds: float
    error_backoff_seconds: float
    error_backoff_cap_seconds: float
    stop_timeout_seconds: float
    # Called after a committed batch that may have enqueued payouts or releases (this
    # process's outbox deliverer wakes up instead of waiting for its next poll).
    after_money_moves: Callable[[], None] | None = None
    # The pay floor's settlement sweep (settings pay_floor_grace_seconds, _recheck_seconds).
    pay_floor_grace_seconds: float = 3_600.0
    pay_floor_recheck_seconds: float = 300.0
    # The scorecard sweep: a requester's scorecard is recomputed once older than this, so many
    # requesters per batch (each an aggregate of the requester's history).
    scorecard_max_age_seconds: float = 60.0
    scorecard_batch_size: int = 50
    # Hourly work's "now" (services/tasks/clock.py): the wall clock; tests pass their own.
    clock: Clock = utcnow
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _state: dict[str, _SweepState] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._state = {name: _SweepState() for name in SWEEPS}
        for name in SWEEPS:
            TIMER_ITEMS.labels(name)  # exported (as 0) before the first item

    def _act(self, name: SweepName) -> Callable[[WriteDb], Awaitable[int]]:
        limit, grace = self.batch_size, self.grace_seconds
        if name == "assignment_deadlines":
            return lambda db: expire_due_assignments(db, limit=limit, grace_seconds=grace)
        if name == "auto_approvals":
            return lambda db: auto_approve_due(db, limit=limit, grace_seconds=grace)
        if name == "task_lifetimes":
            return lambda db: expire_due_tasks(db, limit=limit, grace_seconds=grace)
        if name == "pay_floor_settlements":
            grace, recheck = self.pay_floor_grace_seconds, self.pay_floor_recheck_seconds
            return lambda db: pay_floor.settle_due(
                db, limit=limit, grace_seconds=grace, recheck_seconds=recheck
            )
        if name == "work_sessions":
            return lambda db: end_due_sessions(
                db, now=self.clock(), limit=limit, grace_seconds=grace
            )
        if name == "timesheet_approvals":
            return lambda db: timesheets.auto_approve_due(
                db, now=self.clock(), limit=limit, grace_seconds=grace
            )
        if name == "requester_scorecards":
            max_age, batch = self.scorecard_max_age_seconds, self.scorecard_batch_size
            return lambda db: discovery.refresh_scorecards(db, limit=batch, max_age_seconds=max_age)
        retention = self.retention_seconds
        return lambda db: prune_outbox(db, limit=limit, retention_seconds=retention)

    def _batch_limit(self, name: SweepName) -> int:
        """A full batch of this sweep: the next one starts at once instead of after a poll."""
        return self.scorecard_batch_size if name == "requester_scorecards" else self.batch_size

    async def run_batch(self, name: SweepName) -> int:
        """One batch of one sweep in its own transaction; returns the items acted on."""
        async with self.database.transaction() as db:
            acted = await self._act(name)(db)
        state = self._state[name]
        state.batches += 1
        state.acted += acted
        if acted:
            TIMER_ITEMS.labels(name).inc(acted)
        state.last_batch_at = datetime.now(UTC)
        if acted and name in _MOVES_MONEY and self.after_money_moves is not None:
            self.after_money_moves()
        return acted

    async def drain(self, name: SweepName) -> int:
        """Batches until one comes back short: everything due now (ops and tests)."""
        total = 0
        while True:
            acted = await self.run_batch(name)
            total += acted
            if acted < self._batch_limit(name):
                return total

    async def _loop(self, name: SweepName) -> None:
        backoff = self.error_backoff_seconds
        while not self._stopping.is_set():
            try:
                acted = await self.run_batch(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarting, a deploy's lock: retry later
                state = self._state[name]
                state.failures += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("timer %s failed, retry in %.1fs: %s", name, backoff, state.last_error)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.error_backoff_cap_seconds)
                continue
            backoff = self.error_backoff_seconds
            if acted < self._batch_limit(name):
                await self._sleep(self.poll_interval_seconds)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._loop(name), name=f"timer-{name}") for name in SWEEPS
        ]

    async def stop(self) -> None:
        """Let each sweep finish the batch it is in (its transaction commits or rolls back as a
        whole either way), then return; sweeps still busy after the timeout are cancelled,
        which rolls their batch back."""
        if not self._tasks:
            return
        self._stopping.set()
        _done, pending = await asyncio.wait(self._tasks, timeout=self.stop_timeout_seconds)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for name, result in zip(SWEEPS, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("timer %s ended with %r", name, result)
        self._tasks = []

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def stats(self, backlog_by_sweep: dict[str, int]) -> TimerStats:
        return TimerStats(
            replica=self.replica,
            running=self.running,
            batch_size=self.batch_size,
            poll_interval_seconds=self.poll_interval_seconds,
            grace_seconds=self.grace_seconds,
            sweeps={
                name: SweepStats(**asdict(state), due_now=backlog_by_sweep.get(name, 0))
                for name, state in self._state.items()
            },
        )


def runner_from_settings(app: FastAPI) -> TimerRunner:
    settings = app.state.settings
    deliverer = getattr(app.state, "outbox_deliverer", None)
    return TimerRunner(
        database=app.state.database,
        batch_size=settings.timers_batch_size,
        poll_interval_seconds=settings.timers_poll_interval_seconds,
        grace_seconds=settings.timers_grace_seconds,
        retention_seconds=settings.outbox_retention_seconds,
        error_backoff_seconds=settings.timers_error_backoff_seconds,
        error_backoff_cap_seconds=settings.timers_error_backoff_cap_seconds,
        stop_timeout_seconds=settings.background_stop_timeout_seconds,
        after_money_moves=deliverer.wake if deliverer is not None else None,
        pay_floor_grace_seconds=settings.pay_floor_grace_seconds,
        pay_floor_recheck_seconds=settings.pay_floor_recheck_seconds,
        scorecard_max_age_seconds=settings.discovery_scorecard_max_age_seconds,
        scorecard_batch_size=settings.discovery_scorecard_batch_size,
    )


async def timer_stats(runner: TimerRunner, db: Db) -> TimerStats:
    due = await backlog(
        db,
        grace_seconds=runner.grace_seconds,
        retention_seconds=runner.retention_seconds,
        now=runner.clock(),
        scorecard_max_age_seconds=runner.scorecard_max_age_seconds,
    )
    return runner.stats(due)


@asynccontextmanager
async def timers_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the sweeps for the app's lifetime (enter it inside the outbox's lifespan, so the
    deliverer exists to be woken and outlives the last batch)."""
    runner = runner_from_settings(app)
    app.state.timer_runner = runner
    if app.state.settings.timers_enabled:
        runner.start()
    try:
        yield
    finally:
        await runner.stop()
