"""Timer throughput: `python -m tests.services.tasks.timers.bench_timers --help`.

Not collected by pytest. Creates a throwaway database on the given server, migrates it, writes
with SQL (setup is not what is measured) `--items` due rows for each sweep — submitted
assignments past auto_approve_at (100 projects, 50 workers), accepted assignments past their
deadline, open tasks past their lifetime — then drains each sweep with `--replicas` runners
(each its own engine, as separate processes would have) and prints how long it took. It checks
that every row was acted on exactly once (counters and outbox rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from shared.ids import new_id

ROOT = Path(__file__).resolve().parents[4]
SWEEPS = ("auto_approvals", "assignment_deadlines", "task_lifetimes")


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def setup(url: str, *, items: int, projects: int = 100, workers: int = 50) -> None:
    conn = await asyncpg.connect(url)
    try:
        requester = new_id()
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email, email_normalized)"
            " VALUES ($1, 'requester', 'r', $2, lower($2))",
            requester,
            f"{requester}@bench.example",
        )
        project_ids = [new_id() for _ in range(projects)]
        await conn.execute(
            """
            INSERT INTO projects (id, requester_id, status, title, task_type, labels,
                reward_cents, fee_cents, assignments_per_task, assignment_duration_seconds,
                lifetime_seconds, auto_approve_seconds, published_at)
            SELECT p, $2, 'published', 'bench', 'classification', '["a","b"]',
                10, 2, 1, 600, 86400, 86400, now()
            FROM unnest($1::text[]) AS p
            """,
            project_ids,
            requester,
        )
        worker_ids = [new_id() for _ in range(workers)]
        # Three groups of `items` tasks: (due auto-approval, overdue accepted, past lifetime).
        await conn.execute(
            """
            INSERT INTO tasks (id, project_id, requester_id, input, max_assignments, open_slots,
                               expires_at)
            SELECT 'T' || g.kind || lpad(g.i::text, 9, '0'), ($2::text[])[1 + g.i % $3],
                   $1, '{"text": "hi"}', 1,
                   CASE WHEN g.kind = 'L' THEN 1 ELSE 0 END,
                   CASE WHEN g.kind = 'L' THEN now() - interval '1 minute'
                        ELSE now() + interval '1 day' END
            FROM (SELECT k AS kind, i FROM unnest(ARRAY['A', 'D', 'L']) AS k,
                  generate_series(1, $4) AS i) g
            """,
            requester,
            project_ids,
            projects,
            items,
        )
        await conn.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id, status,
                answer, reward_cents, fee_cents, accepted_at, deadline, submitted_at,
                auto_approve_at)
            SELECT 'A' || t.id, t.id, t.project_id, $1, ($2::text[])[1 + n % $3],
                   CASE WHEN substr(t.id, 2, 1) = 'A' THEN 'submitted' ELSE 'accepted' END,
                   CASE WHEN substr(t.id, 2, 1) = 'A' THEN '{"label": "a"}'::jsonb END,
                   10, 2, now() - interval '1 hour',
                   CASE WHEN substr(t.id, 2, 1) = 'A' THEN now() + interval '1 hour'
                        ELSE now() - interval '1 minute' END,
                   CASE WHEN substr(t.id, 2, 1) = 'A' THEN now() - interval '30 minutes' END,
                   CASE WHEN substr(t.id, 2, 1) = 'A' THEN now() - interval '1 minute' END
            FROM (SELECT id, project_id, row_number() OVER () AS n FROM tasks
                  WHERE substr(id, 2, 1) IN ('A', 'D')) t
            """,
            requester,
            worker_ids,
            workers,
        )
        await conn.execute(
            """
            INSERT INTO gold_stats (project_id, worker_id, submitted)
            SELECT project_id, worker_id, count(*) FROM assignments
            WHERE status = 'submitted' GROUP BY project_id, worker_id
            """
        )
        await conn.execute("VACUUM ANALYZE tasks")
        await conn.execute("VACUUM ANALYZE assignments")
    finally:
        await conn.close()


async def drain(url: str, sweep: str, *, replicas: int, batch_size: int) -> tuple[float, int]:
    from services.tasks.timers.service import TimerRunner
    from shared.database import Database, make_pool

    databases = [
        Database(
            pool=await make_pool(url, max_size=2, application_name="bench-timers"),
            hot_pool=await make_pool(url, max_size=1, application_name="bench-timers", hot=True),
        )
        for _ in range(replicas)
    ]
    runners = [
        TimerRunner(
            database=database,
            batch_size=batch_size,
            poll_interval_seconds=1,
            grace_seconds=0,
            retention_seconds=7 * 86_400,
            error_backoff_seconds=0.1,
            error_backoff_cap_seconds=1,
            stop_timeout_seconds=5,
        )
        for database in databases
    ]
    try:
        await runners[0].run_batch(sweep)  # warm the connections and plans
        start = time.perf_counter()
        acted = await asyncio.gather(*(r.drain(sweep) for r in runners))
        return time.perf_counter() - start, sum(acted)
    finally:
        for database in databases:
            await database.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--items", type=int, default=5_000, help="due rows per sweep")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("--database-url or DATABASE_URL is required")
    name = f"bench_timers_{int(time.time())}_{uuid.uuid4().hex[:6]}"
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
        await setup(url, items=args.items)
        print(
            f"{args.items} due rows per sweep, {args.replicas} replicas, "
            f"batches of {args.batch_size}",
            flush=True,
        )
        for sweep in SWEEPS:
            seconds, acted = await drain(
                url, sweep, replicas=args.replicas, batch_size=args.batch_size
            )
            print(f"  {sweep:22s} {seconds:6.2f}s  ({acted / seconds:7.0f} items/s)", flush=True)
        check = await asyncpg.connect(url)
        try:
            row = await check.fetchrow(
                """
                SELECT
                  (SELECT count(*) FROM assignments WHERE status = 'approved') AS approved,
                  (SELECT count(*) FROM assignments WHERE status = 'expired') AS expired,
                  (SELECT count(*) FROM tasks WHERE status = 'expired') AS tasks_expired,
                  (SELECT count(*) FROM outbox WHERE kind = 'payout') AS payouts,
                  (SELECT coalesce(sum((payload->>'amount_cents')::bigint), 0) FROM outbox
                   WHERE key LIKE 'release:tasks:%') AS released_cents,
                  (SELECT sum(approved_slots) FROM tasks) AS approved_slots,
                  (SELECT sum(approved) FROM gold_stats) AS stats_approved
                """
            )
            print("  check:", dict(row))
            n = args.items
            assert row["approved"] == row["payouts"] == row["approved_slots"] == n, dict(row)
            assert row["stats_approved"] == n and row["expired"] == n, dict(row)
            assert row["tasks_expired"] == n and row["released_cents"] == n * 12, dict(row)
        finally:
            await check.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
