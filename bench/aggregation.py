"""Aggregation bench: crowd-kit's methods on a simulated crowd, time and peak memory per method.

    .venv/bin/python -m bench.aggregation [--tasks 100000] [--per-task 10] [--methods ...]

The crowd: `--tasks` tasks with a known true label (4 classes, skewed priors), each answered by
`--per-task` distinct workers drawn from a pool of reliable workers (right 85-95% of the time),
mediocre ones (55-70%), uniform spammers (a random label) and one-label spammers (always the
same label). The answers are written as the service's loader writes them (Postgres COPY CSV:
task_id, worker_id, label) and each method runs as the service runs it: `crowd.run_job` in a
fresh spawned process (so each method's peak resident memory is its own). Printed per method:
wall time (process start and crowd-kit import included), the job's own compute time, peak RSS
of the job process, and accuracy against the truth; then Dawid-Skene's accuracy against majority
vote's. The bench measures; it does not judge.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import orjson

from services.tasks.results.methods import LABEL_METHODS, AggregationResult, JobSpec, ProjectShape

LABELS = ("cat", "dog", "bird", "fish")
PRIORS = (0.4, 0.3, 0.2, 0.1)


@dataclass(frozen=True, slots=True)
class SimulatedCrowd:
    rows: list[tuple[str, str, str]]  # (task_id, worker_id, label), tasks by id
    truth: dict[str, str]
    reliability: dict[str, float]  # -1.0 marks a one-label spammer


def simulated_crowd(
    *, tasks: int, per_task: int, workers: int | None = None, seed: int = 19
) -> SimulatedCrowd:
    """A deterministic crowd (numpy's PCG64 with `seed`)."""
    rng = np.random.default_rng(seed)
    pool = workers or max(per_task * 3, tasks * per_task // 5_000)
    kinds = rng.choice(4, size=pool, p=(0.35, 0.25, 0.25, 0.15))
    reliability = np.where(
        kinds == 0,
        rng.uniform(0.85, 0.95, pool),
        np.where(kinds == 1, rng.uniform(0.55, 0.7, pool), np.where(kinds == 2, 0.0, -1.0)),
    )
    favourite = rng.integers(0, len(LABELS), pool)
    truth_codes = rng.choice(len(LABELS), size=tasks, p=PRIORS)
    width = len(str(tasks))
    task_ids = [f"T{i:0{width}d}" for i in range(tasks)]
    worker_ids = [f"W{i:06d}" for i in range(pool)]
    chosen = np.argsort(rng.random((tasks, pool)), axis=1)[:, :per_task] if pool <= 64 else None
    rows: list[tuple[str, str, str]] = []
    for t in range(tasks):
        who = (
            chosen[t]
            if chosen is not None
            else rng.choice(pool, size=per_task, replace=False, shuffle=False)
        )
        right = rng.random(per_task)
        noise = rng.integers(0, len(LABELS), per_task)
        for j, w in enumerate(sorted(who)):
            r = reliability[w]
            if r < 0:
                code = favourite[w]
            elif right[j] < r:
                code = truth_codes[t]
            else:
                code = noise[j]
            rows.append((task_ids[t], worker_ids[w], LABELS[code]))
    return SimulatedCrowd(
        rows=rows,
        truth={task_ids[t]: LABELS[c] for t, c in enumerate(truth_codes)},
        reliability={worker_ids[w]: float(reliability[w]) for w in range(pool)},
    )


WORDS = tuple(f"w{i}" for i in range(60))


def simulated_texts(*, tasks: int, per_task: int, seed: int = 19) -> tuple[list, dict]:
    """Transcriptions: a true sentence per task; each worker keeps each word with their
    reliability, else swaps it for another word or drops it."""
    rng = np.random.default_rng(seed)
    pool = max(per_task * 3, 30)
    reliability = rng.uniform(0.6, 0.98, pool)
    rows, truth = [], {}
    width = len(str(tasks))
    for t in range(tasks):
        task_id = f"T{t:0{width}d}"
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(5, 12))]
        truth[task_id] = {"text": " ".join(words)}
        for w in sorted(rng.choice(pool, size=per_task, replace=False)):
            said = []
            for word in words:
                roll = rng.random()
                if roll < reliability[w]:
                    said.append(word)
                elif roll < (1 + reliability[w]) / 2:
                    said.append(WORDS[rng.integers(0, len(WORDS))])
            rows.append((task_id, f"W{w:06d}", " ".join(said)))
    return rows, truth


def simulated_boxes(*, tasks: int, per_task: int, seed: int = 19) -> tuple[list, dict]:
    """Boxes: one true car per image; reliable workers draw it within a few percent, the
    others anywhere."""
    rng = np.random.default_rng(seed)
    pool = max(per_task * 3, 30)
    reliable = rng.random(pool) < 0.7
    rows, truth = [], {}
    width = len(str(tasks))
    for t in range(tasks):
        task_id = f"T{t:0{width}d}"
        x, y = rng.uniform(0.05, 0.5, 2)
        w, h = rng.uniform(0.2, 0.45, 2)
        truth[task_id] = {"boxes": [{"label": "car", "x": x, "y": y, "width": w, "height": h}]}
        for worker in sorted(rng.choice(pool, size=per_task, replace=False)):
            if reliable[worker]:
                jx, jy, jw, jh = rng.normal(0, 0.01, 4)
                box = (x + jx, y + jy, w + jw, h + jh)
            else:
                bx, by = rng.uniform(0, 0.6, 2)
                box = (bx, by, *rng.uniform(0.05, 0.4, 2))
            bx, by, bw, bh = (min(max(float(v), 0.0), 1.0) for v in box)
            answer = {
                "boxes": [
                    {
                        "label": "car",
                        "x": bx,
                        "y": by,
                        "width": min(bw, 1 - bx),
                        "height": min(bh, 1 - by),
                    }
                ]
            }
            rows.append((task_id, f"W{worker:06d}", orjson.dumps(answer).decode()))
    return rows, truth


def accuracy(result: AggregationResult, truth: dict[str, str]) -> float:
    right = sum(
        1
        for task_id, answer in zip(result.task_ids, result.answers, strict=True)
        if answer["label"] == truth[task_id]
    )
    return right / len(truth)


def write_csv(crowd: SimulatedCrowd, path: str) -> None:
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows(crowd.rows)


def run_method(
    method: str, path: str, shape: ProjectShape | None = None
) -> tuple[AggregationResult, float]:
    """One method in a fresh spawned process, as the service's pool runs it."""
    from services.tasks.results import crowd

    spec = JobSpec(
        method=method,
        shape=shape or ProjectShape("classification", LABELS, False),
        answers_path=path,
        gold={},
        gold_stats={},
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1
    ) as pool:
        result = pool.submit(crowd.run_job, spec).result()
    return result, time.perf_counter() - started


async def measure_postgres_load(crowd: SimulatedCrowd, url: str, path: str) -> None:
    """Time the service's loader (repository.copy_voting_answers: COPY to a CSV file) on a
    throwaway database holding the crowd's answers in an `assignments` table of the real
    columns the loader reads and the real index (a stand-in without the other tables)."""
    import uuid

    import asyncpg

    from services.tasks.results import repository
    from shared.database import WriteDb, _init_connection

    name = f"bench_aggregation_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, _ = url.rpartition("/")
        conn = await asyncpg.connect(f"{base}/{name}")
        await _init_connection(conn)
        await conn.execute(
            """
            CREATE TABLE assignments (
                id text PRIMARY KEY, task_id text NOT NULL, project_id text NOT NULL,
                worker_id text NOT NULL, status text NOT NULL, answer jsonb);
            CREATE INDEX ix_assignments_project_id_status_id
                ON assignments (project_id, status, id);
            """
        )
        records = (
            (f"A{i:09d}", task, "P1", worker, "submitted", f'{{"label": "{label}"}}')
            for i, (task, worker, label) in enumerate(crowd.rows)
        )
        await conn.copy_records_to_table(
            "assignments",
            records=records,
            columns=("id", "task_id", "project_id", "worker_id", "status", "answer"),
        )
        await conn.execute("VACUUM ANALYZE assignments")
        started = time.perf_counter()
        watermark = await repository.answers_watermark(WriteDb(conn), project_id="P1")
        watermark_s = time.perf_counter() - started
        started = time.perf_counter()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            with open(path, "wb") as file:  # noqa: ASYNC230 (a bench, alone on its loop)

                async def write(chunk: bytes) -> None:
                    file.write(chunk)

                await repository.copy_voting_answers(
                    WriteDb(conn),
                    project_id="P1",
                    task_type="classification",
                    multi_label=False,
                    output=write,
                )
        load_s = time.perf_counter() - started
        await conn.close()
        print(
            f"postgres: watermark ({watermark}) {watermark_s * 1000:.0f} ms; loader COPY of "
            f"{len(crowd.rows)} answers to CSV {load_s:.1f} s "
            f"({os.path.getsize(path) / 2**20:.1f} MB)"  # noqa: ASYNC240
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aggregation", description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--per-task", type=int, default=10)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--methods", nargs="+", choices=LABEL_METHODS, default=list(LABEL_METHODS))
    parser.add_argument(
        "--other-tasks",
        type=int,
        default=5_000,
        help="tasks of the rover (transcription) and segmentation_em (boxes) runs; 0 skips them",
    )
    parser.add_argument(
        "--other-per-task", type=int, default=5, help="answers per task of those runs"
    )
    parser.add_argument(
        "--other-methods",
        nargs="+",
        choices=("rover", "segmentation_em"),
        default=["rover", "segmentation_em"],
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also time the loader against this server (a throwaway database is made on it)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    crowd = simulated_crowd(tasks=args.tasks, per_task=args.per_task, seed=args.seed)
    print(
        f"simulated crowd: {args.tasks} tasks x {args.per_task} answers = {len(crowd.rows)} "
        f"answers, {len(crowd.reliability)} workers, seed {args.seed} "
        f"({time.perf_counter() - started:.1f} s); machine: {os.cpu_count()} cores, shared"
    )
    accuracies: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-aggregation-") as folder:
        path = os.path.join(folder, "answers.csv")
        if args.postgres:
            asyncio.run(measure_postgres_load(crowd, args.postgres, path))
        else:
            write_csv(crowd, path)
        size_mb = os.path.getsize(path) / 2**20
        print(f"answers CSV (the loader's COPY format): {size_mb:.1f} MB")
        print(f"{'method':<12} {'wall s':>8} {'compute s':>10} {'peak RSS MB':>12} {'accuracy':>9}")
        for method in args.methods:
            result, wall = run_method(method, path)
            accuracies[method] = accuracy(result, crowd.truth)
            print(
                f"{method:<12} {wall:>8.1f} {result.seconds:>10.1f} {result.peak_rss_mb:>12.0f} "
                f"{accuracies[method]:>9.4f}",
                flush=True,
            )
    if args.other_tasks:
        _run_others(args.other_tasks, args.other_per_task, args.other_methods, args.seed)
    if "dawid_skene" in accuracies and "majority" in accuracies:
        ds, mv = accuracies["dawid_skene"], accuracies["majority"]
        verdict = "beats" if ds > mv else "does not beat"
        print(f"Dawid-Skene {ds:.4f} {verdict} majority vote {mv:.4f} ({ds - mv:+.4f})")
    return 0


def _run_others(tasks: int, per_task: int, methods: list[str], seed: int) -> None:
    from services.tasks.gold.service import is_gold_correct

    cases = [
        ("rover", "transcription", simulated_texts),
        ("segmentation_em", "bounding_box", simulated_boxes),
    ]
    for method, task_type, simulate in cases:
        if method not in methods:
            continue
        rows, truth = simulate(tasks=tasks, per_task=per_task, seed=seed)
        with tempfile.TemporaryDirectory(prefix="bench-aggregation-") as folder:
            path = os.path.join(folder, "answers.csv")
            with open(path, "w", newline="") as file:
                csv.writer(file).writerows(rows)
            result, wall = run_method(method, path, ProjectShape(task_type, None, False))
        right = sum(
            is_gold_correct(task_type=task_type, answer=answer, gold_answer=truth[task_id])
            for task_id, answer in zip(result.task_ids, result.answers, strict=True)
        )
        print(
            f"{method:<12} {wall:>8.1f} {result.seconds:>10.1f} {result.peak_rss_mb:>12.0f} "
            f"{right / len(truth):>9.4f}  ({tasks} tasks x {per_task} answers; "
            "right = the gold rule)",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
