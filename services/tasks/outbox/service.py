"""The payments outbox: money moves committed with the change that causes them.

An approval must not be lost if payments is down, and must not pay if the approval rolls back.
So the approval and its payout message are written in one transaction (`enqueue`), and a
deliverer sends committed messages to payments afterwards until payments acknowledges them.
Payments acts once per `key`, so sending a message twice (a retry after a timeout, two replicas
whose leases overlapped) moves money once.

Delivery: a loop in every tasks process leases due messages (`FOR UPDATE SKIP LOCKED`, then a
lease time instead of a long transaction, so no database transaction spans an HTTP call), posts
them, and marks them delivered; failures back off exponentially up to a cap. Requests that enqueue
wake the loop after their commit (`wake_after_commit`), so a payout normally lands within
milliseconds instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from fastapi import BackgroundTasks, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tasks.outbox import repository
from services.tasks.outbox.schemas import OutboxStats
from shared.db import driver_connection
from shared.errors import AppError, DependencyUnavailable
from shared.http import InternalClient
from shared.jsonutil import dumps

log = logging.getLogger("tasks.outbox")

MessageKind = Literal["payout", "release"]
PAYMENTS_PATHS: dict[str, str] = {"payout": "/internal/payouts", "release": "/internal/releases"}
# Other 4xx answers will not change by asking again: the message is parked for a human. These
# pass (a token being rotated, load shedding); 5xx already arrives as DependencyUnavailable.
_RETRYABLE_4XX = frozenset({401, 408, 425, 429})


@dataclass(frozen=True, slots=True)
class Message:
    kind: MessageKind
    key: str
    payload: dict[str, Any]


async def enqueue(
    conn: asyncpg.Connection, *, kind: MessageKind, key: str, payload: dict[str, Any]
) -> None:
    """Add one message in the caller's transaction; it is sent only if that transaction commits.

    `payload` is the body for payments (`key` is added to it). A key already enqueued is the
    same event and is left as it is.
    """
    await enqueue_many(conn, [Message(kind=kind, key=key, payload=payload)])


async def enqueue_many(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
    """`enqueue` for a batch (bulk review, timers) in one statement."""
    if not messages:
        return
    await repository.insert_messages(
        conn,
        kinds=[m.kind for m in messages],
        keys=[m.key for m in messages],
        payloads=[dumps({**m.payload, "key": m.key}).decode() for m in messages],
    )


def wake_after_commit(request: Request, background: BackgroundTasks) -> None:
    """Ask this process's deliverer for an immediate pass once the response is out.

    Background tasks run after the response is sent, which is after the request's transaction
    committed (the session dependency commits before the response), so the pass sees the rows.
    """
    deliverer: OutboxDeliverer | None = getattr(request.app.state, "outbox_deliverer", None)
    if deliverer is not None:
        background.add_task(deliverer.wake)


async def outbox_stats(conn: asyncpg.Connection) -> OutboxStats:
    row = await repository.stats(conn)
    return OutboxStats(**dict(row))


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.parked


class OutboxDeliverer:
    """Sends due outbox messages to payments; one per process, safe with many processes."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        payments: InternalClient,
        batch_size: int,
        concurrency: int,
        poll_interval_seconds: float,
        backoff_base_seconds: float,
        backoff_cap_seconds: float,
        lease_seconds: float,
        stop_timeout_seconds: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.payments = payments
        self.batch_size = batch_size
        self.poll_interval_seconds = poll_interval_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.lease_seconds = lease_seconds
        self.stop_timeout_seconds = stop_timeout_seconds
        self._stopping = False
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def backoff_seconds(self, attempts: int) -> float:
        """Exponential in the attempts made so far, capped, with jitter so that many messages
        failing together (payments down) do not all come back in the same instant."""
        exact = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** max(attempts - 1, 0))
        return exact * random.uniform(0.5, 1.0)

    async def deliver_due(self) -> DeliveryReport:
        """One pass: lease up to a batch of due messages, send them, record the outcomes."""
        async with self.sessionmaker() as session:
            conn = await driver_connection(session)
            leased = await repository.lease_due(
                conn, limit=self.batch_size, lease_seconds=self.lease_seconds
            )
            await session.commit()
        report = DeliveryReport()
        if not leased:
            return report
        outcomes = await asyncio.gather(*(self._send(row) for row in leased))
        delivered = [row["id"] for row, (ok, _, _) in zip(leased, outcomes, strict=True) if ok]
        async with self.sessionmaker() as session:
            conn = await driver_connection(session)
            if delivered:
                await repository.mark_delivered(conn, delivered)
            for row, (ok, retry, error) in zip(leased, outcomes, strict=True):
                if ok:
                    continue
                report.errors.append(f"{row['key']}: {error}")
                if retry:
                    delay = self.backoff_seconds(row["attempts"])
                    await repository.schedule_retry(
                        conn, message_id=row["id"], delay_seconds=delay, error=error
                    )
                    report.retried += 1
                    log.warning(
                        "outbox %s attempt %d failed, retry in %.1fs: %s",
                        row["key"],
                        row["attempts"],
                        delay,
                        error,
                    )
                else:
                    await repository.park(conn, message_id=row["id"], error=error)
                    report.parked += 1
                    log.error("outbox %s parked, payments refused it: %s", row["key"], error)
            await session.commit()
        report.delivered = len(delivered)
        return report

    async def _send(self, row: asyncpg.Record) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, error) for one message."""
        async with self._limit:
            try:
                await self.payments.post(PAYMENTS_PATHS[row["kind"]], json=row["payload"])
            except DependencyUnavailable as exc:
                return False, True, exc.detail
            except AppError as exc:
                return False, exc.status in _RETRYABLE_4XX, f"{exc.status} {exc.code}: {exc.detail}"
            except Exception as exc:  # a bug or an unexpected answer: keep trying, loudly
                log.exception("outbox %s: unexpected error", row["key"])
                return False, True, f"{type(exc).__name__}: {exc}"
            return True, False, ""

    async def run(self) -> None:
        """Deliver until stopped: a pass whenever woken, else every poll interval."""
        while not self._stopping:
            self._wake.clear()
            try:
                report = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database restarting, say: try again at the next tick
                log.exception("outbox pass failed")
                report = DeliveryReport()
            if report.handled >= self.batch_size and not self._stopping:
                continue  # more may be due right now
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_seconds)
            except TimeoutError:
                pass

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="outbox-deliverer")

    async def stop(self) -> None:
        """Let the pass in progress record its outcomes (so what payments acknowledged is not
        sent again after a restart), then stop; cancel it if it outlasts the timeout. A pass
        cancelled mid-call leaves its messages leased: anyone retries them after the lease."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.stop_timeout_seconds)
        except TimeoutError:
            self._task.cancel()
        except Exception:
            log.exception("outbox deliverer ended with an error")
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._task = None


@asynccontextmanager
async def outbox_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run a deliverer for the app's lifetime (the engine and peers exist by now)."""
    settings = app.state.settings
    deliverer = OutboxDeliverer(
        sessionmaker=app.state.sessionmaker,
        payments=app.state.peers["payments"],
        batch_size=settings.outbox_batch_size,
        concurrency=settings.outbox_concurrency,
        poll_interval_seconds=settings.outbox_poll_interval_seconds,
        backoff_base_seconds=settings.outbox_backoff_base_seconds,
        backoff_cap_seconds=settings.outbox_backoff_cap_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        stop_timeout_seconds=settings.background_stop_timeout_seconds,
    )
    app.state.outbox_deliverer = deliverer
    if settings.outbox_enabled:
        deliverer.start()
    try:
        yield
    finally:
        await deliverer.stop()
