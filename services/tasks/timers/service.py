"""The timers: sweeps that act on due rows, run by every tasks process.

Four sweeps, each a loop of batches:

- `assignment_deadlines`: accepted assignments past their deadline expire and their slots
  reopen (or, in a closed project or an expired task, their money is released);
- `auto_approvals`: submitted assignments past `auto_approve_at` are approved exactly like a
  manual approval (slot consumed, stats counted, payout enqueued in the same transaction);
- `task_lifetimes`: open tasks past their expiry (their own `expires_at`, or their project's
  `tasks_expire_at` for tasks uploaded before publish) expire and their open slots' money is
  released;
- `outbox_retention`: delivered outbox messages older than the retention are deleted.

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

from services.tasks.lifecycle import task_lifetime
from services.tasks.lifecycle.auto_approve import auto_approve_due
from services.tasks.lifecycle.expire import expire_overdue_assignments
from services.tasks.timers import repository
from services.tasks.timers.schemas import SweepStats, TimerStats
from shared.database import Database, Db, WriteDb, as_row
from shared.metrics import TIMER_ITEMS

log = logging.getLogger("tasks.timers")

SweepName = Literal["assignment_deadlines", "auto_approvals", "task_lifetimes", "outbox_retention"]
SWEEPS: tuple[SweepName, ...] = (
    "assignment_deadlines",
    "auto_approvals",
    "task_lifetimes",
    "outbox_retention",
)
# Sweeps whose batches may write outbox messages: the deliverer is woken after they commit.
_MOVES_MONEY: frozenset[SweepName] = frozenset(
    {"assignment_deadlines", "auto_approvals", "task_lifetimes"}
)


async def expire_due_assignments(db: WriteDb, *, limit: int, grace_seconds: float) -> int:
    return await expire_overdue_assignments(db, limit, grace_seconds=grace_seconds)


async def expire_due_tasks(db: WriteDb, *, limit: int, grace_seconds: float) -> int:
    expired, _released_cents = await task_lifetime.expire_due_tasks(
        db, limit=limit, grace_seconds=grace_seconds
    )
    return expired


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
        AS outbox_retention
"""


@dataclass(frozen=True, slots=True)
class Backlog:
    assignment_deadlines: int
    auto_approvals: int
    task_lifetimes: int
    outbox_retention: int


async def backlog(db: Db, *, grace_seconds: float, retention_seconds: float) -> dict[str, int]:
    """Items due right now per sweep (each count walks only its partial index's due range)."""
    row = as_row(Backlog, await db.fetchrow(_BACKLOG, grace_seconds, retention_seconds))
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
        retention = self.retention_seconds
        return lambda db: prune_outbox(db, limit=limit, retention_seconds=retention)

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
            if acted < self.batch_size:
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
            if acted < self.batch_size:
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
    )


async def timer_stats(runner: TimerRunner, db: Db) -> TimerStats:
    due = await backlog(
        db, grace_seconds=runner.grace_seconds, retention_seconds=runner.retention_seconds
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
