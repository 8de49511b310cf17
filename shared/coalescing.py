"""Group commit for small, frequent writes: many callers' events, one statement.

A heartbeat is a tiny write that thousands of open sessions send every few seconds. Run one
statement (and one commit) per event and each pays the whole fixed cost of a statement: a
pooled connection taken and handed back, a round trip, a transaction's commit. A `Coalescer`
lets concurrent callers share that cost, the way a database's group commit shares a WAL flush:

- a caller hands its event in and waits for its own result;
- if no batch is in flight, one starts at once with what is waiting: an idle service adds no
  delay, and no timer ever holds an event back;
- while a batch is in flight, newcomers gather and go together in the next one, so batches
  grow exactly as fast as the load does (up to `max_batch`);
- one batch in flight per coalescer: the statements of one process never wait on each other.

Events are keyed: a batch holds at most one event per key (a second event for the same key
waits for the next batch), so a statement that applies "this session's event" never meets the
same row twice, and two events of one key keep their order.

A batch that fails fails each of its callers with the same error; nothing is retried here (the
statement is atomic: it took effect for all of its events or for none). A caller that goes away
(its request cancelled) does not cancel the batch its event is in: the others still get theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

from shared.metrics import COALESCED_BATCHES, COALESCED_EVENTS

K = TypeVar("K")
E = TypeVar("E")
R = TypeVar("R")


class Coalescer(Generic[K, E, R]):
    """Concurrent `submit(key, event)` calls answered by `run_batch` over lists of events."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[E]], Awaitable[Mapping[K, R]]],
        *,
        key: Callable[[E], K],
        max_batch: int,
        name: str,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self._key = key
        self.max_batch = max_batch
        self._waiting: list[tuple[E, asyncio.Future[R | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # How many batches ran and how many events they held: this coalescer's (for the tests),
        # and the process's per `name` (marketplace_coalesced_*_total, exported from 0).
        self.batches = 0
        self.events = 0
        self._batches_metric = COALESCED_BATCHES.labels(name)
        self._events_metric = COALESCED_EVENTS.labels(name)

    async def submit(self, event: E) -> R | None:
        """The result `run_batch` gave for this event's key, or None when it gave none."""
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="coalescer-flush")
        return await future

    def _next_batch(self) -> list[tuple[E, asyncio.Future[R | None]]]:
        batch: list[tuple[E, asyncio.Future[R | None]]] = []
        later: list[tuple[E, asyncio.Future[R | None]]] = []
        keys: set[K] = set()
        for item in self._waiting:
            if item[1].done():  # its caller went away before the batch started
                continue
            key = self._key(item[0])
            if key in keys or len(batch) >= self.max_batch:
                later.append(item)
            else:
                keys.add(key)
                batch.append(item)
        self._waiting = later
        return batch

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                if not batch:
                    continue
                self.batches += 1
                self.events += len(batch)
                self._batches_metric.inc()
                self._events_metric.inc(len(batch))
                try:
                    results = await self._run_batch([event for event, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for event, future in batch:
                    if not future.done():
                        future.set_result(results.get(self._key(event)))
        finally:
            self._flusher = None
            for _, future in self._waiting:  # only after a cancellation (shutdown)
                future.cancel()
            self._waiting = []
