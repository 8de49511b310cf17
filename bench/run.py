"""`python3 manage.py bench [--quick] [--only NAME ...] [--churn-seconds N]` (or `python -m
bench.run`): start a private stack, run the figures, print the table, write the JSON.

Exit status 0 when the run completed (whatever the figures say: the bench measures, it does not
judge; the table's result column does), 1 when the stack or a phase failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from bench.load import LoadRunner
from bench.report import machine_description, table, write_json
from bench.scenarios import GROUPS, PROFILES, Bench, BenchConfig, with_overrides
from bench.stack import ROOT, ProcessGroup, ResourceSampler, Stack, local_stack, start_reference
from bench.variants import VARIANTS

RESULTS_DIR = ROOT / ".data" / "bench-results"
# The connection budget of the tasks service's hot paths (TASKS_DB_DRIVER_POOL_SIZE); the
# reference app gets the same.
DEFAULT_POOL_SIZE = 40


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="manage.py bench",
        description="Benchmark the marketplace on a private stack (see bench/README.md).",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a minute or two, smaller sizes")
    size.add_argument("--smoke", action="store_true", help="the tiny CI configuration")
    parser.add_argument(
        "--only", nargs="+", choices=GROUPS, metavar="NAME", help=f"only these: {GROUPS}"
    )
    parser.add_argument("--churn-seconds", type=float, help="length of the churn phase")
    parser.add_argument("--cycle-seconds", type=float, help="length of each figure-1 phase")
    parser.add_argument("--rounds", type=int, help="repeat figure 1 and 3 phases, interleaved")
    parser.add_argument(
        "--tasks-workers",
        type=int,
        default=1,
        help="uvicorn workers of the tasks service (the reference app gets as many)",
    )
    parser.add_argument(
        "--client-procs", type=int, help="load generator processes (0: in this process)"
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        help="DB_POOL_SIZE and DB_DRIVER_POOL_SIZE of every service, and the reference's pool "
        "(default: the services' own settings; the reference gets 40, as the tasks hot paths)",
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        choices=VARIANTS,
        default=[],
        metavar="NAME",
        help=f"run the services with measured proposals patched in: {VARIANTS}",
    )
    parser.add_argument("--json", type=Path, help="where to write the JSON report")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    profile = "quick" if args.quick else "smoke" if args.smoke else "full"
    return with_overrides(
        PROFILES[profile],
        only=tuple(args.only) if args.only else None,
        churn_seconds=args.churn_seconds,
        cycle_seconds=args.cycle_seconds,
        rounds=args.rounds,
        client_processes=args.client_procs,
    )


FIGURE_ORDER = ("cycles", "churn", "scale_accept", "scale_discovery", "upload", "approve", "memory")


def figure_order(key: str) -> int:
    return next((i for i, prefix in enumerate(FIGURE_ORDER) if key.startswith(prefix)), 99)


def add_reference(stack: Stack, group: ProcessGroup, *, workers: int, pool_size: int) -> None:
    """Start bench/reference_app.py on the stack's database and watch it like a service."""
    url, pid = start_reference(group, stack.database_url, workers=workers, pool_size=pool_size)
    stack.urls["reference"] = url
    stack.pids["reference"] = pid


async def run_bench(
    config: BenchConfig,
    stack: Stack,
    *,
    say: Callable[[str], None] = print,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every figure of `config` on a running stack (reference app included); the JSON report."""
    started = time.time()
    conn = await asyncpg.connect(stack.database_url)
    try:
        postgres_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    runner = LoadRunner(config.client_processes)
    try:
        with ResourceSampler(stack.pids, stack.database_url) as sampler:
            bench = Bench(config, stack, runner, sampler, say)
            figures = await bench.run()
            figures += bench.memory_figures()
    finally:
        runner.close()
    # Phases run in the order their preconditions need; the table follows the numbering.
    figures.sort(key=lambda figure: figure_order(figure.key))
    return {
        "profile": config.profile,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_seconds": round(time.time() - started, 1),
        "machine": machine_description(postgres_version),
        "stack": {**stack.description, **(settings or {})},
        "config": bench.config_json(),
        "seed_seconds": bench.seed_seconds,
        "figures": [figure.to_json() for figure in figures],
        "table": table(figures),
    }


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so every `finally` stops the services and
    drops the database instead of leaving orphaned uvicorn processes behind."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    config = config_from_args(args)
    say: Callable[[str], None] = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    pool_size = args.pool_size or DEFAULT_POOL_SIZE
    settings = {
        "tasks_uvicorn_workers": args.tasks_workers,
        "reference_uvicorn_workers": args.tasks_workers,
        "db_pool_size": pool_size,
        "client_processes": config.client_processes,
        "variants": args.variant,
    }
    say(f"profile {config.profile}: {', '.join(config.only)}; {settings}")
    try:
        with local_stack(
            tasks_workers=args.tasks_workers,
            pool_size=args.pool_size,
            keep_database=args.keep_db,
            variants=tuple(args.variant),
        ) as (stack, group):
            # The reference gets the connection budget of the tasks service's hot paths.
            add_reference(stack, group, workers=args.tasks_workers, pool_size=pool_size)
            say(f"stack up: {stack.urls} ({stack.description.get('postgres')})")
            payload = asyncio.run(run_bench(config, stack, say=say, settings=settings))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:  # the stack's logs say more than a traceback of the bench
        say(f"failed: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
        return 1
    path = args.json or RESULTS_DIR / f"{config.profile}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, payload)
    print(payload["table"])
    print(
        f"\n{config.profile} run, {payload['duration_seconds']:.0f}s; machine: "
        + ", ".join(f"{k}={v}" for k, v in payload["machine"].items())
    )
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
