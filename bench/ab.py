"""A/B of a proposed change on the accept → submit cycle, both sides in the same run.

    python -m bench.ab --variant no_access_log [--concurrency 32] [--seconds 5] [--rounds 4]
    python -m bench.ab --env TASKS_DB_DRIVER_POOL_SIZE=20

Starts the bench stack (unchanged services) plus a second tasks service with the variant patched
in (bench/variants.py), both on the same database and peers, then alternates the figure-1 loop
between them `rounds` times on two identical projects. On a shared machine whose background load
moves by a core from one minute to the next, only such interleaved same-run comparisons resolve
differences of 10-20%; CPU milliseconds per cycle of each tasks process is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench.load import LoadRunner
from bench.scenarios import PROFILES, Bench, Phase, _combine, with_overrides
from bench.seed import ANSWER
from bench.stack import ResourceSampler, free_port, local_stack, uvicorn_argv
from bench.variants import VARIANTS


async def compare(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    config = with_overrides(PROFILES["quick"], only=("cycles",), client_processes=args.client_procs)
    runner = LoadRunner(config.client_processes)
    try:
        with ResourceSampler(stack.pids, stack.database_url) as sampler:
            bench = Bench(config, stack, runner, sampler, say=lambda _line: None)
            await bench.setup()
            tasks = int((args.seconds + 1) * args.rounds * 1500)
            projects = {}
            for side in ("base", "variant"):
                projects[side] = await bench.api.published_project(
                    bench.requester, f"ab {side}", tasks, f"ab{side}"
                )
            actors = bench.workers[: args.concurrency]
            runs: dict[str, list[Phase]] = {"base": [], "variant": []}
            urls = {"base": stack.urls["tasks"], "variant": stack.urls["tasks_variant"]}
            for _ in range(args.rounds):
                for side in ("base", "variant"):
                    job = bench.job(
                        "api_cycle",
                        actors,
                        params={"project_id": projects[side]["id"], "answer": ANSWER},
                        duration=1.0,
                    )
                    job.urls = {**stack.urls, "tasks": urls[side]}
                    await bench.phase(job)  # warm-up
                    job.duration = args.seconds
                    runs[side].append(await bench.phase(job))
            await bench.api.close()
            await bench.db.close()  # type: ignore[union-attr]
    finally:
        runner.close()
    out = {}
    for side, phases in runs.items():
        combined = _combine(phases)
        process = "tasks" if side == "base" else "tasks_variant"
        summary = combined.summary("accept", "submit")
        out[side] = {
            "cycles_per_second": summary["per_second"],
            "tasks_cpu_ms_per_cycle": summary.get("cpu_ms_per_unit", {}).get(process),
            "postgres_cpu_ms_per_cycle": summary.get("cpu_ms_per_unit", {}).get("postgres"),
            "accept_p50_ms": summary["accept_p50_ms"],
            "accept_p99_ms": summary["accept_p99_ms"],
            "errors": summary.get("errors", {}),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("--variant", nargs="*", choices=VARIANTS, default=[])
    parser.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="settings for the variant tasks service only, e.g. TASKS_DB_POOL_SIZE=40",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with local_stack(tasks_workers=1, pool_size=None) as (stack, group):
        port = free_port()
        extra = dict(item.split("=", 1) for item in args.env)
        env = {**group_env(stack), "BENCH_VARIANTS": ",".join(args.variant), **extra}
        app = "bench.variants:create_tasks_app" if args.variant else "services.tasks.app:create_app"
        pid = group.start("tasks_variant", uvicorn_argv(app, port), env)
        stack.urls["tasks_variant"] = f"http://127.0.0.1:{port}"
        stack.pids["tasks_variant"] = pid
        group.wait_healthy("tasks_variant", stack.urls["tasks_variant"])
        result = asyncio.run(compare(stack, args))
    base, variant = result["base"], result["variant"]
    label = "+".join([*args.variant, *args.env]) or "none (same as base)"
    print(f"variant {label}, {args.concurrency} workers, {args.rounds} rounds")
    for key in base:
        print(f"  {key:28} base {base[key]!s:>12}   variant {variant[key]!s:>12}")
    if base["cycles_per_second"]:
        ratio = variant["cycles_per_second"] / base["cycles_per_second"]
        print(f"  throughput ratio variant/base: {ratio:.2f}")
    return 0


def group_env(stack: Any) -> dict[str, str]:
    from bench.stack import service_env

    return service_env(stack.database_url, stack.urls, stack.internal_token, pool_size=None)


if __name__ == "__main__":
    sys.exit(main())
