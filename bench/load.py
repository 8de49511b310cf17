"""The load generator: closed-loop asyncio + httpx clients, optionally spread over processes.

Each virtual client is one actor (a worker with its own API key, or the requester) running one
loop (`LOOPS`) back to back with no think time, so throughput is what the stack sustains at that
concurrency. On a 2-core machine the client itself costs CPU (httpx is not free), so a job can
be split over several client processes; each reports its own CPU seconds, which the report shows
next to the figure (a client near 100% of a core is the bottleneck, not the stack).

Results are mergeable: latency histograms with ~1% wide logarithmic buckets (exact enough for
p50/p99, and a 10-minute run stays small), completions per second, errors by status and code.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

_BUCKETS_PER_E = 100.0  # bucket width e^(1/100): ~1%


@dataclass
class Histogram:
    """Latency histogram over log-spaced microsecond buckets."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0

    def record(self, seconds: float) -> None:
        micros = max(seconds * 1e6, 1.0)
        self.buckets[int(math.log(micros) * _BUCKETS_PER_E)] += 1
        self.count += 1

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count

    def percentile(self, p: float) -> float | None:
        """Seconds at percentile p (0-100): the upper edge of the bucket holding it."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return math.exp((bucket + 1) / _BUCKETS_PER_E) / 1e6
        return None


@dataclass
class LoadJob:
    """One measured phase: `loop` run by one client per actor, for a time or a set of items.

    Time-bounded (`duration`): completions are counted from `start_at` (a wall-clock time, so
    several processes start together) for `duration` seconds; work still in flight at the end is
    dropped. Item-bounded (`items[i]` for client i): each client works through its own list.
    """

    loop: str
    urls: dict[str, str]
    actors: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None
    items: list[list[Any]] | None = None
    start_at: float = 0.0
    bucket_seconds: float = 1.0
    keep_outputs: bool = False


@dataclass
class LoadResult:
    latencies: dict[str, Histogram] = field(default_factory=dict)
    completions: Counter[int] = field(default_factory=Counter)  # time bucket -> completed units
    units: int = 0
    elapsed: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    outputs: list[Any] = field(default_factory=list)
    client_cpu_seconds: float = 0.0
    client_processes: int = 1

    def merge(self, other: LoadResult) -> None:
        for name, hist in other.latencies.items():
            self.latencies.setdefault(name, Histogram()).merge(hist)
        self.completions.update(other.completions)
        self.units += other.units
        self.elapsed = max(self.elapsed, other.elapsed)
        self.errors.update(other.errors)
        self.outputs += other.outputs
        self.client_cpu_seconds += other.client_cpu_seconds

    @property
    def throughput(self) -> float:
        return self.units / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, name: str, percentile: float) -> float | None:
        hist = self.latencies.get(name)
        return None if hist is None else hist.percentile(percentile)

    def rate_between(self, start: float, end: float) -> float:
        """Completions per second in [start, end) seconds from the phase start."""
        buckets = [b for b in self.completions if start <= b < end]
        return sum(self.completions[b] for b in buckets) / max(end - start, 1e-9)


class StopClient(Exception):
    """A loop cannot go on (e.g. no work left): this client stops, the others go on."""


class Ctx:
    """What a loop iteration sees: the client, its actor, the job, and the recorder."""

    def __init__(self, client: httpx.AsyncClient, job: LoadJob, actor: dict[str, Any]) -> None:
        self.client = client
        self.job = job
        self.actor = actor
        self.headers = {"Authorization": f"Bearer {actor['api_key']}"} if "api_key" in actor else {}
        self.result = LoadResult()

    async def call(
        self, op: str, method: str, url: str, *, expect: int, body: Any = None
    ) -> httpx.Response:
        """One request, timed; a status other than `expect` is counted and raised."""
        content = None if body is None else orjson.dumps(body)
        headers = self.headers if content is None else {**self.headers, **_JSON}
        started = time.perf_counter()
        resp = await self.client.request(method, url, content=content, headers=headers)
        if resp.status_code != expect:
            code = ""
            if resp.headers.get("content-type", "").endswith("json"):
                try:
                    code = resp.json().get("code", "")
                except ValueError:
                    code = "?"
            self.result.errors[f"{op} {resp.status_code} {code}".strip()] += 1
            raise UnexpectedStatus(resp.status_code, code)
        self.result.latencies.setdefault(op, Histogram()).record(time.perf_counter() - started)
        return resp


_JSON = {"Content-Type": "application/json"}


class UnexpectedStatus(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- the loops
# Each returns the unit's output (kept only when job.keep_outputs) after one unit of work.


async def api_cycle(ctx: Ctx, _item: Any) -> Any:
    """accept → submit through the public API (auth, requirements, answer validation)."""
    tasks, project_id = ctx.job.urls["tasks"], ctx.job.params["project_id"]
    accepted = await ctx.call(
        "accept", "POST", f"{tasks}/v1/work/projects/{project_id}/accept", expect=201
    )
    assignment_id = accepted.json()["assignment_id"]
    await ctx.call(
        "submit",
        "POST",
        f"{tasks}/v1/assignments/{assignment_id}/submit",
        expect=200,
        body={"answer": ctx.job.params["answer"]},
    )
    return assignment_id


async def reference_cycle(ctx: Ctx, _item: Any) -> Any:
    """accept → submit on bench/reference_app.py: the same two statements, nothing else."""
    reference, params = ctx.job.urls["reference"], ctx.job.params
    accepted = await ctx.call(
        "accept",
        "POST",
        f"{reference}/accept",
        expect=201,
        body={
            "project_id": params["project_id"],
            "worker_id": ctx.actor["id"],
            "requester_id": params["requester_id"],
            "reward_cents": params["reward_cents"],
            "fee_cents": params["fee_cents"],
            "duration_seconds": params["duration_seconds"],
        },
    )
    assignment_id = accepted.json()["assignment_id"]
    await ctx.call(
        "submit",
        "POST",
        f"{reference}/submit/{assignment_id}",
        expect=200,
        body={"answer": params["answer"], "worker_id": ctx.actor["id"]},
    )
    return assignment_id


async def accept_return(ctx: Ctx, _item: Any) -> Any:
    """accept → return: measures accept while the project's open slots stay where they are."""
    tasks, project_id = ctx.job.urls["tasks"], ctx.job.params["project_id"]
    accepted = await ctx.call(
        "accept", "POST", f"{tasks}/v1/work/projects/{project_id}/accept", expect=201
    )
    assignment_id = accepted.json()["assignment_id"]
    await ctx.call("return", "POST", f"{tasks}/v1/assignments/{assignment_id}/return", expect=200)
    return assignment_id


async def accept_only(ctx: Ctx, _item: Any) -> Any:
    """One accept; the output says who holds the assignment (only the holder may submit)."""
    tasks, project_id = ctx.job.urls["tasks"], ctx.job.params["project_id"]
    accepted = await ctx.call(
        "accept", "POST", f"{tasks}/v1/work/projects/{project_id}/accept", expect=201
    )
    return ctx.actor["id"], accepted.json()["assignment_id"]


async def submit_item(ctx: Ctx, assignment_id: Any) -> Any:
    await ctx.call(
        "submit",
        "POST",
        f"{ctx.job.urls['tasks']}/v1/assignments/{assignment_id}/submit",
        expect=200,
        body={"answer": ctx.job.params["answer"]},
    )
    return assignment_id


async def approve_item(ctx: Ctx, assignment_id: Any) -> Any:
    await ctx.call(
        "approve",
        "POST",
        f"{ctx.job.urls['tasks']}/v1/assignments/{assignment_id}/approve",
        expect=200,
    )
    return assignment_id


async def discover(ctx: Ctx, _item: Any) -> Any:
    resp = await ctx.call(
        "discover", "GET", f"{ctx.job.urls['tasks']}/v1/work/projects?limit=50", expect=200
    )
    return len(resp.json()["items"])


async def heartbeat_rotate(ctx: Ctx, _item: Any) -> Any:
    """One heartbeat, on the next of this client's work sessions in turn (`actor["beats"]`:
    (api_key, session_id) pairs of several workers): with many sessions per client each one
    beats every few seconds, as real worker apps do, so most heartbeats add time and take it
    from their project's budget row."""
    beats = ctx.actor["beats"]
    turn = ctx.actor.get("turn", 0)
    ctx.actor["turn"] = turn + 1
    api_key, session_id = beats[turn % len(beats)]
    ctx.headers = {"Authorization": f"Bearer {api_key}"}
    await ctx.call(
        "heartbeat",
        "POST",
        f"{ctx.job.urls['tasks']}/v1/work/sessions/{session_id}/heartbeat",
        expect=200,
    )
    return session_id


LOOPS: dict[str, Callable[[Ctx, Any], Awaitable[Any]]] = {
    "heartbeat_rotate": heartbeat_rotate,
    "api_cycle": api_cycle,
    "reference_cycle": reference_cycle,
    "accept_return": accept_return,
    "accept_only": accept_only,
    "submit_item": submit_item,
    "approve_item": approve_item,
    "discover": discover,
}


# --------------------------------------------------------------------------- running a job


async def _client_loop(ctx: Ctx, index: int, start: float, end: float | None) -> None:
    loop = LOOPS[ctx.job.loop]
    job = ctx.job
    items = job.items[index] if job.items is not None else None
    position = 0
    rotate: list[str] = ctx.actor.get("rotate") or []
    turn = 0
    while True:
        if rotate:  # this client speaks for several workers in turn (see scenarios._rotating)
            ctx.headers = {"Authorization": f"Bearer {rotate[turn % len(rotate)]}"}
            turn += 1
        if items is not None:
            if position >= len(items):
                return
            item = items[position]
            position += 1
        else:
            item = None
            if end is not None and time.time() >= end:
                return
        try:
            output = await loop(ctx, item)
        except UnexpectedStatus as exc:
            if exc.status == 404 and exc.code == "no_work_available":
                raise StopClient from exc
            continue
        except httpx.HTTPError as exc:
            ctx.result.errors[f"{job.loop} {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
            continue
        done = time.time()
        if end is not None and done >= end:
            return
        ctx.result.units += 1
        ctx.result.completions[int((done - start) / job.bucket_seconds)] += 1
        if job.keep_outputs:
            ctx.result.outputs.append(output)


def _client() -> httpx.AsyncClient:
    """One client with one keep-alive connection per virtual client: httpx's pool costs CPU
    per request that grows with its number of connections (measured: ~4 ms of client CPU per
    cycle at 32 clients on one shared pool, 8-19 ms at 128), which made the load generator the
    bottleneck. Plain HTTP only, so no CA bundle is loaded (verify=False)."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=httpx.Timeout(60.0, connect=10.0),
        verify=False,
        trust_env=False,
    )


async def run_job(job: LoadJob) -> LoadResult:
    """Run every client of `job` in this process (used directly and by each client process)."""
    cpu_before = time.process_time()
    clients = [_client() for _ in job.actors]
    try:
        contexts = [
            Ctx(client, job, actor) for client, actor in zip(clients, job.actors, strict=True)
        ]
        if job.start_at > time.time():
            await asyncio.sleep(job.start_at - time.time())
        start = time.time()
        end = start + job.duration if job.duration is not None else None

        async def guarded(i: int) -> None:
            try:
                await _client_loop(contexts[i], i, start, end)
            except StopClient:
                contexts[i].result.errors["client stopped: no_work_available"] += 1

        await asyncio.gather(*(guarded(i) for i in range(len(contexts))))
        finished = time.time()
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    merged = LoadResult()
    for ctx in contexts:
        merged.merge(ctx.result)
    merged.elapsed = job.duration if job.duration is not None else finished - start
    merged.client_cpu_seconds = time.process_time() - cpu_before
    return merged


def _run_job_sync(job: LoadJob) -> LoadResult:
    """Entry point in a client process: its own event loop (uvloop when available)."""
    try:
        import uvloop

        return uvloop.run(run_job(job))
    except ImportError:
        return asyncio.run(run_job(job))


def _warm() -> bool:
    return True


class LoadRunner:
    """Runs jobs in this process (`processes=0`) or split over a pool of client processes."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool: ProcessPoolExecutor | None = None
        if processes > 0:
            import multiprocessing

            self.pool = ProcessPoolExecutor(
                max_workers=processes, mp_context=multiprocessing.get_context("spawn")
            )
            # Spawn and import now, not inside the first measured phase.
            for future in [self.pool.submit(_warm) for _ in range(processes * 2)]:
                future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    async def run(self, job: LoadJob) -> LoadResult:
        if self.pool is None or len(job.actors) < 2:
            job.start_at = time.time()
            result = await run_job(job)
            result.client_processes = 0
            return result
        shares = min(self.processes, len(job.actors))
        job.start_at = time.time() + 1.0
        parts = []
        for share in range(shares):
            picks = list(range(share, len(job.actors), shares))
            parts.append(
                LoadJob(
                    loop=job.loop,
                    urls=job.urls,
                    actors=[job.actors[i] for i in picks],
                    params=job.params,
                    duration=job.duration,
                    items=None if job.items is None else [job.items[i] for i in picks],
                    start_at=job.start_at,
                    bucket_seconds=job.bucket_seconds,
                    keep_outputs=job.keep_outputs,
                )
            )
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self.pool, _run_job_sync, part) for part in parts)
        )
        merged = LoadResult(client_processes=shares)
        for part_result in results:
            merged.merge(part_result)
        return merged
