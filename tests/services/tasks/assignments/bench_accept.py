"""Accept throughput: `python -m tests.services.tasks.assignments.bench_accept --help`.

Not collected by pytest. Creates a throwaway database on the given server, migrates it, writes
one published project with `--tasks` tasks and `--workers` workers with SQL (setup is not what is
measured), then claims for `--seconds` with `--concurrency` clients, printing accepts/s per
window so a collapse (dead tuples piling up in front of the claim scan) would show:

- `--mode service`: `assignments.service.accept` on a session, one transaction per accept (the
  statements of the hot path, no HTTP);
- `--mode http`: real requests to a uvicorn process of the tasks service (auth, idempotency-less
  POST, JSON), the load generator sharing the machine;
- `--head`: every claim starts at rank 0 (the "global queue head" pattern FACTS.md warns
  about), for comparison with the random start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from shared.auth import generate_api_key
from shared.ids import new_id

ROOT = Path(__file__).resolve().parents[4]


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def setup(url: str, *, tasks: int, workers: int, slots: int) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(url)
    try:
        requester = new_id()
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email) VALUES ($1, 'requester', 'r', $2)",
            requester,
            f"{requester}@bench.example",
        )
        project = new_id()
        await conn.execute(
            """
            INSERT INTO projects (id, requester_id, status, title, task_type, labels,
                reward_cents, fee_cents, assignments_per_task, assignment_duration_seconds,
                lifetime_seconds, auto_approve_seconds, published_at)
            VALUES ($1, $2, 'published', 'bench', 'classification', '["a","b"]',
                10, 2, $3, 600, 86400, 86400, now())
            """,
            project,
            requester,
            slots,
        )
        await conn.execute(
            """
            INSERT INTO tasks (id, project_id, requester_id, input, max_assignments, open_slots,
                               expires_at)
            SELECT 'T' || lpad(g::text, 12, '0'), $1, $2, '{"text": "hello"}', $3, $3,
                   now() + interval '1 day'
            FROM generate_series(1, $4) AS g
            """,
            project,
            requester,
            slots,
            tasks,
        )
        keys = []
        for _ in range(workers):
            worker = new_id()
            key, prefix, key_hash = generate_api_key()
            await conn.execute(
                "INSERT INTO accounts (id, kind, name, email) VALUES ($1, 'worker', 'w', $2)",
                worker,
                f"{worker}@bench.example",
            )
            await conn.execute(
                "INSERT INTO api_keys (id, account_id, prefix, key_hash) VALUES ($1, $2, $3, $4)",
                new_id(),
                worker,
                prefix,
                key_hash,
            )
            keys.append(f"{worker}:{key}")
        await conn.execute("VACUUM ANALYZE tasks")
        return project, keys
    finally:
        await conn.close()


class Meter:
    def __init__(self, window: float) -> None:
        self.window = window
        self.ok = 0
        self.no_work = 0
        self.errors = 0
        self.windows: list[int] = []
        self._last = 0

    async def report(self, seconds: float) -> None:
        for _ in range(int(seconds / self.window)):
            await asyncio.sleep(self.window)
            done = self.ok - self._last
            self._last = self.ok
            self.windows.append(done)
            print(f"  {done / self.window:8.0f} accepts/s", flush=True)


async def run_service(url: str, project: str, workers: list[str], args: argparse.Namespace):
    from services.tasks.assignments import service
    from shared.db import make_engine, make_sessionmaker

    engine = make_engine(url, pool_size=args.concurrency, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    meter = Meter(args.window)
    stop = time.monotonic() + args.seconds

    async def client() -> None:
        while time.monotonic() < stop:
            worker = random.choice(workers).split(":")[0]
            async with sessionmaker() as session:
                try:
                    await service.accept(session, worker_id=worker, project_id=project)
                    await session.commit()
                    meter.ok += 1
                except service.NoWorkAvailable:
                    meter.no_work += 1
                except Exception as exc:
                    meter.errors += 1
                    if meter.errors < 5:
                        print("error:", repr(exc))

    await asyncio.gather(meter.report(args.seconds), *(client() for _ in range(args.concurrency)))
    await engine.dispose()
    return meter


async def run_http(url: str, project: str, workers: list[str], args: argparse.Namespace):
    import httpx

    port = 18000 + random.randint(0, 999)
    env = {
        **os.environ,
        "TASKS_DATABASE_URL": url,
        "TASKS_INTERNAL_TOKEN": "bench-token-" + uuid.uuid4().hex,
        "TASKS_LOG_LEVEL": "WARNING",
        "TASKS_RATE_LIMIT_PER_KEY": "1000000/minute",
        "TASKS_DB_POOL_SIZE": str(args.concurrency),
        "TASKS_OUTBOX_ENABLED": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services.tasks.app:create_app",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=base, limits=httpx.Limits(max_connections=args.concurrency)
        ) as http:
            for _ in range(100):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            meter = Meter(args.window)
            stop = time.monotonic() + args.seconds

            async def client() -> None:
                while time.monotonic() < stop:
                    key = random.choice(workers).split(":", 1)[1]
                    resp = await http.post(
                        f"/v1/work/projects/{project}/accept",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    if resp.status_code == 201:
                        meter.ok += 1
                    elif resp.status_code == 404:
                        meter.no_work += 1
                    else:
                        meter.errors += 1
                        if meter.errors < 5:
                            print("error:", resp.status_code, resp.text)

            await asyncio.gather(
                meter.report(args.seconds), *(client() for _ in range(args.concurrency))
            )
            return meter
    finally:
        proc.terminate()
        await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--mode", choices=("service", "http"), default="service")
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--slots", type=int, default=1, help="max_assignments per task")
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--window", type=float, default=5)
    parser.add_argument("--head", action="store_true", help="always start at rank 0")
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("--database-url or DATABASE_URL is required")
    if args.head:
        from services.tasks.assignments import service

        service.random.randint = lambda a, b: 0  # type: ignore[assignment]
    name = f"bench_accept_{int(time.time())}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(with_database(args.database_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(args.database_url, name)
    try:
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            "upgrade",
            "head",
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
        )
        if await migrate.wait() != 0:
            raise SystemExit("alembic upgrade failed")
        project, workers = await setup(
            url, tasks=args.tasks, workers=args.workers, slots=args.slots
        )
        print(
            f"{args.mode}: {args.tasks} tasks x {args.slots} slots, {args.workers} workers, "
            f"{args.concurrency} clients, {'head' if args.head else 'random'} start",
            flush=True,
        )
        run = run_service if args.mode == "service" else run_http
        meter = await run(url, project, workers, args)
        total = sum(meter.windows)
        print(
            f"total {total} accepts in {len(meter.windows) * args.window:.0f}s = "
            f"{total / (len(meter.windows) * args.window):.0f}/s; no work {meter.no_work}, "
            f"errors {meter.errors}"
        )
        check = await asyncpg.connect(url)
        try:
            over = await check.fetchval(
                "SELECT count(*) FROM tasks t WHERE t.max_assignments <> t.open_slots + "
                "(SELECT count(*) FROM assignments a WHERE a.task_id = t.id)"
            )
            print(f"tasks over max_assignments: {over}")
        finally:
            await check.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
