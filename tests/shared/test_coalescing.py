"""The Coalescer (shared/coalescing.py): concurrent callers share batches, one batch in flight,
one event per key per batch, each caller gets its own key's result, and a failing batch fails
exactly its own callers. The heartbeat statement it serves is tested against Postgres in
tests/services/tasks/sessions/test_session_events.py; this is the scheduling alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.coalescing import Coalescer


class Recorder:
    """A batch function that records each batch and answers `key -> value * 10`, after waiting
    on `gate` (so a test can hold a batch in flight while more callers arrive)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: Exception | None = None

    async def __call__(self, events: Sequence[tuple[str, int]]) -> dict[str, int]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.batches.append(list(events))
            await self.gate.wait()
            if self.fail_next is not None:
                exc, self.fail_next = self.fail_next, None
                raise exc
            return {key: value * 10 for key, value in events if key != "missing"}
        finally:
            self.in_flight -= 1


def coalescer(recorder: Recorder, max_batch: int = 100) -> Coalescer[str, tuple[str, int], int]:
    return Coalescer(recorder, key=lambda event: event[0], max_batch=max_batch, name="test")


async def test_a_lone_event_runs_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    events = coalescer(recorder)
    assert await events.submit(("a", 1)) == 10
    assert await events.submit(("b", 2)) == 20
    assert recorder.batches == [[("a", 1)], [("b", 2)]]


async def test_events_arriving_during_a_batch_share_the_next_one() -> None:
    recorder = Recorder()
    events = coalescer(recorder)
    recorder.gate.clear()
    first = asyncio.create_task(events.submit(("s0", 0)))
    await asyncio.sleep(0)  # the first batch is in flight, held at the gate
    rest = [asyncio.create_task(events.submit((f"s{i}", i))) for i in range(1, 40)]
    await asyncio.sleep(0)
    recorder.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == [i * 10 for i in range(40)]
    assert [len(b) for b in recorder.batches] == [1, 39]
    assert recorder.most_in_flight == 1
    assert (events.batches, events.events) == (2, 40)


async def test_a_batch_holds_one_event_per_key_and_at_most_max_batch() -> None:
    recorder = Recorder()
    events = coalescer(recorder, max_batch=3)
    recorder.gate.clear()
    held = asyncio.create_task(events.submit(("x", 0)))
    await asyncio.sleep(0)
    waiting = [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5), ("a", 6)]
    tasks = [asyncio.create_task(events.submit(e)) for e in waiting]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(held, *tasks) == [0, 10, 20, 30, 40, 50, 60]
    # Same key: later batches, in arrival order; at most three a batch.
    assert recorder.batches == [
        [("x", 0)],
        [("a", 1), ("b", 3), ("c", 4)],
        [("a", 2), ("d", 5)],
        [("a", 6)],
    ]


async def test_a_key_without_a_result_is_none() -> None:
    events = coalescer(Recorder())
    assert await events.submit(("missing", 1)) is None


async def test_a_failing_batch_fails_its_own_callers_only() -> None:
    recorder = Recorder()
    events = coalescer(recorder)
    recorder.gate.clear()
    recorder.fail_next = RuntimeError("database went away")
    doomed = [asyncio.create_task(events.submit((f"d{i}", i))) for i in range(3)]
    await asyncio.sleep(0)
    survivors = [asyncio.create_task(events.submit((f"s{i}", i))) for i in range(3)]
    await asyncio.sleep(0)
    recorder.gate.set()
    outcomes = await asyncio.gather(*doomed, *survivors, return_exceptions=True)
    # The first batch (the three that were waiting when it started) failed, each of its
    # callers with the error; the next one (those that came while it was in flight) ran.
    assert [type(o) for o in outcomes[:3]] == [RuntimeError] * 3
    assert outcomes[3:] == [0, 10, 20]
    assert [len(b) for b in recorder.batches] == [3, 3]


async def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    recorder = Recorder()
    events = coalescer(recorder)
    recorder.gate.clear()
    head = asyncio.create_task(events.submit(("h", 1)))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(events.submit(("i", 2)))
    patient = asyncio.create_task(events.submit(("p", 3)))
    await asyncio.sleep(0)
    impatient.cancel()
    head.cancel()  # its batch is in flight: it still runs for everyone in it
    recorder.gate.set()
    assert await patient == 30
    with pytest.raises(asyncio.CancelledError):
        await impatient
    with pytest.raises(asyncio.CancelledError):
        await head
    # The one that left before its batch started was dropped from it.
    assert recorder.batches == [[("h", 1)], [("p", 3)]]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), key=lambda e: e, max_batch=0, name="test")
