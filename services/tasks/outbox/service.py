"""The payments outbox: money moves committed with the change that causes them.

An approval must not be lost if payments is down, and must not pay if the approval rolls back.
So the approval and its payout message are written in one transaction (the transitions'
`messages.enqueue_many`, services/tasks/lifecycle), and a
deliverer sends committed messages to payments afterwards until payments acknowledges them.
Payments acts once per `key`, so sending a message twice (a retry after a timeout, two replicas
whose leases overlapped) moves money once.

Delivery: a loop in every tasks process leases due messages (`FOR UPDATE SKIP LOCKED`, then a
lease time instead of a long transaction, so no database transaction spans an HTTP call), posts
them, and marks them delivered; failures back off exponentially up to a cap. Requests that enqueue
wake the loop after their commit (`wake_after_commit`), so a payout normally lands within
milliseconds instead of at the next poll.

Payouts go out in batches (`POST /internal/payouts/batch`, one call and one payments transaction
for a whole pass): one call per payout made delivery CPU-bound, and payouts trailed approvals
(bench figure 5). Passes run back to back while messages keep coming, so under load a pass
carries what arrived during the previous one. Payments answers each item as the single call
would have, so each message is still delivered, retried or parked on its own answer. Releases
and the pay floor's top-ups (`POST /internal/top-ups`) are rarer and still go one call each.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import BackgroundTasks, FastAPI, Request

from services.tasks.outbox import repository
from services.tasks.outbox.repository import LeasedMessage
from services.tasks.outbox.schemas import OutboxStats
from shared.database import Database, Db
from shared.errors import AppError, DependencyUnavailable, describe_error, is_database_outage
from shared.http import InternalClient
from shared.jsonutil import loads
from shared.metrics import OUTBOX_OUTCOMES
from shared.tracing import current_span_context, span_triggered_by, tracer_of

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext, Tracer

log = logging.getLogger("tasks.outbox")

PAYMENTS_PATHS: dict[str, str] = {
    "payout": "/internal/payouts",
    "release": "/internal/releases",
    "top_up": "/internal/top-ups",
}
# The one message for another peer: a training pass's qualification grant (services/tasks/
# training), set by the workers service, idempotent per key like the payments calls.
WORKERS_PATHS: dict[str, str] = {"grant": "/internal/qualification-grants"}
PAYOUT_BATCH_PATH = "/internal/payouts/batch"
# Payments takes at most this many payouts per batch call (docs/internal-api.md).
PAYOUT_BATCH_MAX = 500
# Other 4xx answers will not change by asking again: the message is parked for a human. These
# pass (a token being rotated, load shedding); 5xx already arrives as DependencyUnavailable.
_RETRYABLE_4XX = frozenset({401, 408, 425, 429})
# Requests remembered (as span links) for the next traced pass; more in one pass are not linked.
_MAX_TRIGGERS = 128


def wake_after_commit(request: Request, background: BackgroundTasks) -> None:
    """Ask this process's deliverer for an immediate pass once the response is out.

    Background tasks run after the response is sent, which is after the request's transaction
    committed (a WriteDb commits before the response; an autocommit statement at once), so the
    pass sees the rows.
    """
    deliverer: OutboxDeliverer | None = getattr(request.app.state, "outbox_deliverer", None)
    if deliverer is not None:
        # Traced: the pass that carries this request's messages continues its trace.
        trigger = current_span_context() if deliverer.tracer is not None else None
        background.add_task(deliverer.wake, trigger)


async def outbox_stats(db: Db) -> OutboxStats:
    return await repository.stats(db)


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.parked


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: acknowledged, worth another attempt, or refused for good."""

    delivered: bool
    retry: bool
    error: str

    @classmethod
    def retry_later(cls, error: str) -> Outcome:
        return cls(delivered=False, retry=True, error=error)

    @classmethod
    def refused(cls, error: str) -> Outcome:
        return cls(delivered=False, retry=False, error=error)


DELIVERED = Outcome(delivered=True, retry=False, error="")


def _body(row: LeasedMessage) -> dict[str, Any]:
    """The message's body for payments (stored with its key)."""
    payload = row.payload
    return payload if isinstance(payload, dict) else loads(payload)


def _problem_text(err: AppError) -> str:
    return f"{err.status} {err.code}: {err.detail}"


def _batch_outcomes(rows: Sequence[LeasedMessage], answer: Any) -> list[Outcome]:
    """Each message's outcome from its item of the batch's answer (results in request order)."""
    results = answer["results"]
    if len(results) != len(rows):
        raise ValueError(f"{len(results)} results for {len(rows)} payouts")
    outcomes: list[Outcome] = []
    for row, result in zip(rows, results, strict=True):
        if result["key"] is not None and result["key"] != row.key:
            raise ValueError(f"result for {result['key']!r} in the place of {row.key!r}")
        status = int(result["status"])
        if status in (200, 201):  # applied now, or a replay of what was applied before
            outcomes.append(DELIVERED)
            continue
        problem = result.get("problem") or {}
        error = f"{status} {problem.get('code')}: {problem.get('detail')}"
        if status >= 500 or status in _RETRYABLE_4XX:
            outcomes.append(Outcome.retry_later(error))
        else:
            outcomes.append(Outcome.refused(error))
    return outcomes


class OutboxDeliverer:
    """Sends due outbox messages to payments; one per process, safe with many processes."""

    def __init__(
        self,
        *,
        database: Database,
        payments: InternalClient,
        batch_size: int,
        concurrency: int,
        poll_interval_seconds: float,
        backoff_base_seconds: float,
        backoff_cap_seconds: float,
        lease_seconds: float,
        stop_timeout_seconds: float = 5.0,
        workers: InternalClient | None = None,
    ) -> None:
        self.database = database
        self.payments = payments
        self.workers = workers
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
        # Tracing (None when off): the requests that woke the deliverer since its last pass.
        self.tracer: Tracer | None = None
        self._triggers: list[SpanContext] = []
        for kind in (*PAYMENTS_PATHS, *WORKERS_PATHS):  # every series exported from the start
            for outcome in ("delivered", "retried", "parked"):
                OUTBOX_OUTCOMES.labels(kind, outcome)

    def wake(self, trigger: SpanContext | None = None) -> None:
        if trigger is not None and len(self._triggers) < _MAX_TRIGGERS:
            self._triggers.append(trigger)
        self._wake.set()

    def backoff_seconds(self, attempts: int) -> float:
        """Exponential in the attempts made so far, capped, with jitter so that many messages
        failing together (payments down) do not all come back in the same instant."""
        exact = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** max(attempts - 1, 0))
        return exact * random.uniform(0.5, 1.0)

    async def deliver_due(self) -> DeliveryReport:
        """One pass: lease up to a batch of due messages, send them, record the outcomes.

        Payouts go to payments in batches (one call per `PAYOUT_BATCH_MAX`), releases one call
        each; every message then gets its own outcome, recorded with one statement per kind
        of outcome.
        """
        async with self.database.transaction() as db:
            leased = await repository.lease_due(
                db, limit=self.batch_size, lease_seconds=self.lease_seconds
            )
        report = DeliveryReport()
        if not leased:
            return report
        if self.tracer is None:
            await self._deliver(leased, report)
            return report
        triggers, self._triggers = self._triggers, []
        with span_triggered_by(
            self.tracer, "outbox deliver", triggers, {"outbox.messages": len(leased)}
        ):
            await self._deliver(leased, report)
        return report

    async def _deliver(self, leased: Sequence[LeasedMessage], report: DeliveryReport) -> None:
        payouts = [row for row in leased if row.kind == "payout"]
        others = [row for row in leased if row.kind != "payout"]
        batches = [
            payouts[i : i + PAYOUT_BATCH_MAX] for i in range(0, len(payouts), PAYOUT_BATCH_MAX)
        ]
        sent = await asyncio.gather(
            *(self._send_batch(batch) for batch in batches),
            *(self._send(row) for row in others),
        )
        outcomes: list[tuple[LeasedMessage, Outcome]] = [
            pair
            for batch, batch_outcomes in zip(batches, sent[: len(batches)], strict=True)
            for pair in zip(batch, batch_outcomes, strict=True)
        ]
        outcomes += zip(others, sent[len(batches) :], strict=True)
        await self._record(outcomes, report)

    async def _record(
        self, outcomes: Sequence[tuple[LeasedMessage, Outcome]], report: DeliveryReport
    ) -> None:
        delivered = [row.id for row, outcome in outcomes if outcome.delivered]
        retries = [(row, o) for row, o in outcomes if not o.delivered and o.retry]
        parked = [(row, o) for row, o in outcomes if not o.delivered and not o.retry]
        delays = [self.backoff_seconds(row.attempts) for row, _ in retries]
        async with self.database.transaction() as db:
            if delivered:
                await repository.mark_delivered(db, delivered)
            if retries:
                await repository.schedule_retries(
                    db,
                    ids=[row.id for row, _ in retries],
                    delays_seconds=delays,
                    errors=[o.error for _, o in retries],
                )
            if parked:
                await repository.park(
                    db, ids=[row.id for row, _ in parked], errors=[o.error for _, o in parked]
                )
        report.delivered = len(delivered)
        report.retried = len(retries)
        report.parked = len(parked)
        counted = Counter(
            (row.kind, "delivered" if o.delivered else "retried" if o.retry else "parked")
            for row, o in outcomes
        )
        for (kind, outcome_name), count in counted.items():
            OUTBOX_OUTCOMES.labels(kind, outcome_name).inc(count)
        report.errors = [f"{row.key}: {o.error}" for row, o in (*retries, *parked)]
        if retries:
            # One line per pass, not per message: with payments down a pass fails as a whole.
            log.warning(
                "outbox: %d messages failed, retry in %.1f-%.1fs (first: %s attempt %d: %s)",
                len(retries),
                min(delays),
                max(delays),
                retries[0][0].key,
                retries[0][0].attempts,
                retries[0][1].error,
            )
        for row, outcome in parked:
            log.error("outbox %s parked, payments refused it: %s", row.key, outcome.error)

    async def _send_batch(self, rows: Sequence[LeasedMessage]) -> list[Outcome]:
        """Outcomes of payout messages sent as one `POST /internal/payouts/batch`.

        Payments answers each item as the single call would have, so each message is settled
        on its own answer. A failure of the call itself (payments down, 5xx, a timeout) retries
        every message of the batch, as a failed single call retries its message: payments acts
        once per key, so whatever it applied before the failure is a replay next time. A
        batch refused as a whole with a 4xx (e.g. a payments version without the endpoint) is
        sent again one message per call, which settles each on its own answer.
        """
        async with self._limit:
            try:
                answer = await self.payments.post(
                    PAYOUT_BATCH_PATH, json={"payouts": [_body(row) for row in rows]}
                )
            except DependencyUnavailable as exc:
                return [Outcome.retry_later(exc.detail)] * len(rows)
            except AppError as exc:
                if exc.status in _RETRYABLE_4XX:
                    return [Outcome.retry_later(_problem_text(exc))] * len(rows)
                refused: AppError | None = exc
            except Exception as exc:  # a bug or an unexpected answer: keep trying, loudly
                log.exception("outbox: batch of %d payouts: unexpected error", len(rows))
                return [Outcome.retry_later(f"{type(exc).__name__}: {exc}")] * len(rows)
            else:
                refused = None
        if refused is not None:
            log.warning(
                "outbox: payments refused a batch of %d payouts as a whole (%s); "
                "sending them one by one",
                len(rows),
                _problem_text(refused),
            )
            return list(await asyncio.gather(*(self._send(row) for row in rows)))
        try:
            return _batch_outcomes(rows, answer)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("outbox: unexpected answer to a batch of %d payouts: %s", len(rows), exc)
            return [Outcome.retry_later(f"unexpected batch answer: {exc}")] * len(rows)

    async def _send(self, row: LeasedMessage) -> Outcome:
        """The outcome of one message sent on its own (releases, top-ups, grants; payouts of a
        refused batch)."""
        if row.kind in WORKERS_PATHS:
            peer, path = self.workers, WORKERS_PATHS[row.kind]
        else:
            peer, path = self.payments, PAYMENTS_PATHS[row.kind]
        if peer is None:
            return Outcome.retry_later(f"no peer configured for {row.kind} messages")
        async with self._limit:
            try:
                await peer.post(path, json=_body(row))
            except DependencyUnavailable as exc:
                return Outcome.retry_later(exc.detail)
            except AppError as exc:
                if exc.status in _RETRYABLE_4XX:
                    return Outcome.retry_later(_problem_text(exc))
                return Outcome.refused(_problem_text(exc))
            except Exception as exc:  # a bug or an unexpected answer: keep trying, loudly
                log.exception("outbox %s: unexpected error", row.key)
                return Outcome.retry_later(f"{type(exc).__name__}: {exc}")
            return DELIVERED

    async def run(self) -> None:
        """Deliver until stopped: a pass whenever woken, else every poll interval."""
        while not self._stopping:
            self._wake.clear()
            try:
                report = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarting, say: try again at the next tick
                if is_database_outage(exc):  # expected: one line, no traceback
                    log.warning("outbox pass failed, database unavailable: %s", describe_error(exc))
                else:
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
    """Run a deliverer for the app's lifetime (the database and peers exist by now)."""
    settings = app.state.settings
    deliverer = OutboxDeliverer(
        database=app.state.database,
        payments=app.state.peers["payments"],
        workers=app.state.peers["workers"],
        batch_size=settings.outbox_batch_size,
        concurrency=settings.outbox_concurrency,
        poll_interval_seconds=settings.outbox_poll_interval_seconds,
        backoff_base_seconds=settings.outbox_backoff_base_seconds,
        backoff_cap_seconds=settings.outbox_backoff_cap_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        stop_timeout_seconds=settings.background_stop_timeout_seconds,
    )
    deliverer.tracer = tracer_of(app)
    app.state.outbox_deliverer = deliverer
    if settings.outbox_enabled:
        deliverer.start()
    try:
        yield
    finally:
        await deliverer.stop()
