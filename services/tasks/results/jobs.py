"""Aggregation runs: crowd-kit out of the request path, results cached per answers watermark.

Why a job (docs/architecture.md, "Aggregation"): crowd-kit brings pandas, scipy and
scikit-learn (about 150 MB more resident memory per process and a second of import), and its EM
methods are CPU-bound pandas code that holds the GIL for seconds to minutes on a large project:
in the event loop, or even in a thread, it would stall every other request of the process. So
the service never imports it; a run is:

1. loading: one read-only repeatable-read transaction COPYs the project's voting answers as CSV
   into a temporary file (no per-row Python objects), plus the gold inputs;
2. aggregating: `crowd.run_job` in a process pool (spawned processes, recycled after
   `aggregation_jobs_per_process` runs so the memory of a big project goes back to the system);
3. storing: the per-task aggregates and per-worker skills COPYed into the run's tables, the run
   marked done and the superseded runs of the project and method deleted (failed ones, and
   done ones finished over 10 minutes ago), in one transaction.

While it runs, the run row is heartbeaten (stage, progress, lease); a run whose lease ran out
(its process died) is taken over by the next request that wants it. The results endpoint waits
up to `aggregation_inline_wait_seconds` for a run it started or found running, so small projects
get their results in the same request; otherwise it answers 202 with the run's status URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI

from services.tasks.results import repository
from services.tasks.results.methods import AggregationResult, JobSpec, ProjectShape
from services.tasks.results.progress import read_progress
from services.tasks.results.repository import RunRow
from shared.database import Database
from shared.ids import new_id

log = logging.getLogger("tasks.aggregation")

# Overall progress at the start of each stage; within aggregating, the job's own fraction done
# (crowd-kit's progress bars where it has them: results/progress.py).
_LOADING, _AGGREGATING, _STORING = 0.0, 0.3, 0.9


@dataclass(frozen=True, slots=True)
class ProjectForRun:
    id: str
    task_type: str
    labels: tuple[str, ...] | None
    multi_label: bool


class AggregationJobs:
    """One per process (app.state.aggregation_jobs): the pool and the runs this process owns."""

    def __init__(
        self,
        database: Database,
        *,
        processes: int,
        jobs_per_process: int,
        lease_seconds: float,
        box_grid: int,
        retry_seconds: float = 30.0,
    ) -> None:
        self.database = database
        self.retry_seconds = retry_seconds
        self.processes = processes
        self.jobs_per_process = jobs_per_process
        self.lease_seconds = lease_seconds
        self.box_grid = box_grid
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: forking a process that runs an event loop, threads and open
            # sockets copies them half-alive.
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=self.jobs_per_process or None,
            )
        return self._pool

    def start(self, run: RunRow, project: ProjectForRun) -> None:
        """Run `run` in the background (this process now holds its lease)."""
        task = asyncio.get_running_loop().create_task(self._run(run, project))
        self._tasks[run.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run.id, None))

    async def wait(self, run_id: str, seconds: float) -> None:
        """Wait up to `seconds` for a run this process is running (shielded: the caller giving
        up does not cancel the run)."""
        task = self._tasks.get(run_id)
        if task is not None and seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), seconds)

    async def close(self) -> None:
        """Stop: cancel this process's runs (their leases run out; another process takes them
        over) and end the pool's processes."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._pool is not None:
            processes = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            self._pool = None

    async def _beat(self, run_id: str, stage: str, progress: float) -> None:
        async with self.database.autocommit() as db:
            await repository.heartbeat(
                db,
                run_id=run_id,
                stage=stage,
                progress=min(max(progress, 0.0), 1.0),
                lease_seconds=self.lease_seconds,
            )

    async def _run(self, run: RunRow, project: ProjectForRun) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="aggregation-") as folder:
                path = os.path.join(folder, "answers.csv")
                spec, answer_count = await self._load(run, project, path)
                await self._beat(run.id, "aggregating", _AGGREGATING)
                result = await self._compute(run, spec)
            await self._beat(run.id, "storing", _STORING)
            await self._store(run, result, answer_count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed run is reported on its status URL, then retried
            log.exception("aggregation run %s (%s) failed", run.id, run.method)
            async with self.database.autocommit() as db:
                await repository.fail_run(
                    db, run_id=run.id, error=f"{type(exc).__name__}: {exc}"[:1000]
                )

    async def _load(self, run: RunRow, project: ProjectForRun, path: str) -> tuple[JobSpec, int]:
        await self._beat(run.id, "loading", _LOADING)
        async with self.database.snapshot() as db:  # one consistent, read-only snapshot
            total = await repository.voting_answer_count(db, project_id=project.id)
            gold = (
                await repository.gold_answers(db, project_id=project.id)
                if run.method == "dawid_skene"
                else {}
            )
            tallies = (
                await repository.gold_tallies(db, project_id=project.id)
                if run.method == "glad"
                else {}
            )
            rows = 0
            last_beat = time.monotonic()
            # A local temporary file: writes land in the page cache (microseconds per chunk).
            with open(path, "wb") as file:  # noqa: ASYNC230

                async def write(chunk: bytes) -> None:
                    nonlocal rows, last_beat
                    file.write(chunk)
                    rows += chunk.count(b"\n")
                    if time.monotonic() - last_beat > self.lease_seconds / 3:
                        last_beat = time.monotonic()
                        share = min(rows / total, 1.0) if total else 1.0
                        await self._beat(run.id, "loading", _AGGREGATING * share)

                await repository.copy_voting_answers(
                    db,
                    project_id=project.id,
                    task_type=project.task_type,
                    multi_label=project.multi_label,
                    output=write,
                )
        spec = JobSpec(
            method=run.method,
            shape=ProjectShape(project.task_type, project.labels, project.multi_label),
            answers_path=path,
            gold=gold,
            gold_stats=tallies,
            box_grid=self.box_grid,
            progress_path=os.path.join(os.path.dirname(path), "progress"),
        )
        return spec, total

    async def _compute(self, run: RunRow, spec: JobSpec) -> AggregationResult:
        from services.tasks.results import crowd

        pool = self._executor()
        future = asyncio.get_running_loop().run_in_executor(pool, crowd.run_job, spec)
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.lease_seconds / 3)
            if done:
                try:
                    return future.result()
                except BrokenProcessPool:
                    # The worker process died (killed for memory, say): the next run gets a
                    # new pool instead of this broken one.
                    if self._pool is pool:
                        self._pool = None
                    raise
            done_share = read_progress(spec.progress_path) or 0.0
            await self._beat(
                run.id, "aggregating", _AGGREGATING + (_STORING - _AGGREGATING) * done_share
            )

    async def _store(self, run: RunRow, result: AggregationResult, answer_count: int) -> None:
        tasks = (
            (run.id, task_id, orjson.dumps(answer).decode(), confidence, agreement)
            for task_id, answer, confidence, agreement in zip(
                result.task_ids,
                result.answers,
                result.confidences,
                result.agreements,
                strict=True,
            )
        )
        skills = (
            (run.id, worker_id, skill, answers)
            for worker_id, skill, answers in zip(
                result.worker_ids, result.skills, result.worker_answers, strict=True
            )
        )
        async with self.database.transaction() as db:
            await repository.store_run(
                db,
                run_id=run.id,
                tasks=tasks,
                skills=skills,
                task_count=len(result.task_ids),
                answer_count=answer_count,
                worker_count=len(result.worker_ids),
                compute_seconds=result.seconds,
            )


async def current_run(
    database: Database,
    *,
    jobs: AggregationJobs,
    project: ProjectForRun,
    method: str,
    wait_seconds: float,
) -> RunRow:
    """The run of `method` for the project's answers as they are now: a finished one from the
    cache, or one started (or found running) here, waited for up to `wait_seconds`.

    The stable entry point for anything that needs a project's aggregates (the results export,
    the Label Studio export): when the returned run's status is `done`, read its rows with
    `repository.task_aggregates` / `task_results_with_run`; otherwise report it (202).
    Autocommit statements on a connection of its own: the run row must be visible to the run's
    heartbeats (other connections) the moment it exists, and no transaction stays open while
    it waits."""
    async with database.autocommit() as db:
        watermark = await repository.answers_watermark(db, project_id=project.id)
        run: RunRow | None = None
        for _ in range(3):
            run = await repository.find_run(
                db, project_id=project.id, method=method, watermark=watermark
            )
            if run is None:
                run = await repository.insert_run(
                    db,
                    run_id=new_id(),
                    project_id=project.id,
                    method=method,
                    watermark=watermark,
                    lease_seconds=jobs.lease_seconds,
                )
                if run is None:  # another request created it a moment ago
                    continue
                jobs.start(run, project)
            elif run.status == "failed" or (run.status == "running" and run.lease_expired):
                taken = await repository.restart_run(
                    db,
                    run_id=run.id,
                    lease_seconds=jobs.lease_seconds,
                    retry_seconds=jobs.retry_seconds,
                )
                if taken is None:
                    if run.status == "failed":
                        # Failed too recently to retry (the answer is the failure), or another
                        # request restarted it a moment ago (found running next time round).
                        again = await repository.get_run(db, project_id=project.id, run_id=run.id)
                        if again is not None and again.status == "failed":
                            run = again
                            break
                    continue
                run = taken
                jobs.start(run, project)
            break
    assert run is not None, "aggregation run neither created nor found"
    if run.status != "running":
        return run
    # Waited for without a connection held: the run needs the pool's connections itself.
    await jobs.wait(run.id, wait_seconds)
    async with database.autocommit() as db:
        refreshed = await repository.get_run(db, project_id=project.id, run_id=run.id)
    assert refreshed is not None
    return refreshed


def jobs_of(app: FastAPI) -> AggregationJobs:
    jobs = getattr(app.state, "aggregation_jobs", None)
    if jobs is None:
        settings = app.state.settings
        jobs = AggregationJobs(
            app.state.database,
            processes=settings.aggregation_processes,
            jobs_per_process=settings.aggregation_jobs_per_process,
            lease_seconds=settings.aggregation_lease_seconds,
            box_grid=settings.aggregation_box_grid,
            retry_seconds=settings.aggregation_retry_seconds,
        )
        app.state.aggregation_jobs = jobs
    return jobs


@asynccontextmanager
async def aggregation_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close the runs and the pool of this process at shutdown (created on first use)."""
    try:
        yield
    finally:
        jobs = getattr(app.state, "aggregation_jobs", None)
        if jobs is not None:
            await jobs.close()
