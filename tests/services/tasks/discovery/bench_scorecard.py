"""The scorecard's cost on the work listing.

Run: `python -m tests.services.tasks.discovery.bench_scorecard --help`.

Not collected by pytest. Creates a throwaway database on `--database-url`, migrates it, and
writes with SQL `--requesters` requesters with `--projects` published projects each and
`--answers` decided answers per project (setup is not what is measured). Then it times, for
the requesters of one listing page (`--page` projects, newest first, as the listing picks
them), what decorating the page with requester stats costs:

- `before`: the review stats query the listing ran before the scorecard (per cache miss);
- `live`: the scorecard's figures computed on the spot (a requester the sweep has not reached);
- `stored`: the precomputed scorecards read by primary key (what the listing does now);
- `sweep`: one batch of the refresh sweep (background work, not on the listing's path);

and then the whole first page of `GET /v1/work/projects` (the discovery service's `list_work`,
eligibility and every decoration included, stats cache off) three ways: requester stats by the
`before` query (the listing as it was), by `live` figures (no scorecard stored yet), and from
the `stored` scorecards (the listing now).

Each is run `--repeat` times; the median and p90 in milliseconds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from services.tasks.discovery import repository
from services.tasks.discovery import service as discovery
from shared.database import ReadDb, _init_connection
from shared.ids import new_id
from shared.money import MIN_RATE_SECONDS
from shared.pagination import PageParams

ROOT = Path(__file__).resolve().parents[4]

# The listing's requester stats before the scorecard (git: services/tasks/discovery/repository.py
# at the session's start), kept here verbatim as the baseline.
BEFORE_SQL = """
SELECT p.requester_id,
       count(*) FILTER (WHERE a.status = 'approved') AS approved,
       count(*) FILTER (WHERE a.status = 'rejected') AS rejected,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM a.reviewed_at - a.submitted_at))
           FILTER (WHERE a.reviewed_at IS NOT NULL AND a.submitted_at IS NOT NULL)
           AS median_review
FROM projects p
JOIN assignments a ON a.project_id = p.id AND a.status IN ('approved', 'rejected')
WHERE p.requester_id = ANY($1::text[])
GROUP BY p.requester_id
"""


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def setup(url: str, *, requesters: int, projects: int, answers: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        owners = [new_id() for _ in range(requesters)]
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email, email_normalized) "
            "SELECT o, 'requester', 'r', o || '@bench.example', lower(o) || '@bench.example' "
            "FROM unnest($1::text[]) AS o",
            owners,
        )
        # Round-robin owners, so any page of newest projects spans many requesters.
        project_ids = [new_id() for _ in range(requesters * projects)]
        project_owner = [owners[i % requesters] for i in range(len(project_ids))]
        await conn.execute(
            """
            INSERT INTO projects (id, requester_id, status, title, task_type, labels,
                reward_cents, fee_cents, assignments_per_task, assignment_duration_seconds,
                lifetime_seconds, auto_approve_seconds, published_at, tasks_expire_at)
            SELECT p, o, 'published', 'bench', 'classification', '["a","b"]',
                10, 2, 1, 600, 86400, 86400, now(), now() + interval '1 day'
            FROM unnest($1::text[], $2::text[]) AS x(p, o)
            """,
            project_ids,
            project_owner,
        )
        await conn.execute(
            """
            INSERT INTO tasks (id, project_id, requester_id, input, max_assignments, open_slots,
                status)
            SELECT p || 'T', p, o, '{}', $3 + 1, 1, 'open'
            FROM unnest($1::text[], $2::text[]) AS x(p, o)
            """,
            project_ids,
            project_owner,
            answers,
        )
        await conn.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id, status,
                reward_cents, fee_cents, accepted_at, deadline, submitted_at, reviewed_at)
            SELECT p || 'A' || n, p || 'T', p, o, 'W' || n,
                   CASE WHEN n % 5 = 0 THEN 'rejected' ELSE 'approved' END, 10, 2,
                   now() - make_interval(secs => 4000 + n),
                   now() - make_interval(secs => 4000 + n) + interval '10 minutes',
                   now() - make_interval(secs => 4000 + n) + make_interval(secs => 30 + n % 200),
                   now() - make_interval(secs => 4000 + n)
                       + make_interval(secs => 600 + (n * 37) % 3000)
            FROM unnest($1::text[], $2::text[]) AS x(p, o), generate_series(1, $3) AS n
            """,
            project_ids,
            project_owner,
            answers,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def timed(conn: asyncpg.Connection, repeat: int, sql: str, *args: object) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        await conn.fetch(sql, *args)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:>7}: median {statistics.median(ms):8.2f} ms   p90 {p90:8.2f} ms"


async def measure(url: str, *, page: int, repeat: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        page_owners = sorted(
            {
                r["requester_id"]
                for r in await conn.fetch(
                    "SELECT requester_id FROM projects WHERE status = 'published' "
                    "ORDER BY id DESC LIMIT $1",
                    page,
                )
            }
        )
        print(f"a page of {page} projects from {len(page_owners)} requesters", flush=True)
        print(summary("before", await timed(conn, repeat, BEFORE_SQL, page_owners)), flush=True)
        live = await timed(
            conn, repeat, repository.SCORECARD_FIGURES_SQL, page_owners, MIN_RATE_SECONDS, 3
        )
        print(summary("live", live), flush=True)
        sweep = []
        for _ in range(max(1, repeat // 5)):
            async with conn.transaction():
                start = time.perf_counter()
                await conn.execute(
                    repository.REFRESH_SCORECARDS_SQL, len(page_owners), 0.0, MIN_RATE_SECONDS, 3
                )
                sweep.append((time.perf_counter() - start) * 1000)
        await conn.execute(repository.REFRESH_SCORECARDS_OF_SQL, page_owners, MIN_RATE_SECONDS, 3)
        stored = await timed(conn, repeat, repository._STORED_SCORECARDS_SQL, page_owners)
        print(summary("stored", stored), flush=True)
        print(summary("sweep", sweep) + f"  (a batch of {len(page_owners)} requesters)")
        await listing(conn, page=page, repeat=repeat, owners=page_owners)
    finally:
        await conn.close()


async def listing(conn: asyncpg.Connection, *, page: int, repeat: int, owners: list[str]) -> None:
    worker = new_id()
    await conn.execute(
        "INSERT INTO accounts (id, kind, name, email, email_normalized) "
        "VALUES ($1, 'worker', 'w', $2, lower($2))",
        worker,
        f"{worker}@bench.example",
    )
    await _init_connection(conn)  # the kit's JSON codecs, as every pool connection has
    db = ReadDb(conn)
    params = PageParams(limit=page, cursor=None)
    real = discovery.scorecards

    async def before(db_: object, ids: list[str], *, ttl: float) -> dict:
        await conn.fetch(BEFORE_SQL, ids)
        return {}

    async def live(db_: object, ids: list[str], *, ttl: float) -> dict:
        return await repository.scorecard_figures(
            db, ids, min_seconds=MIN_RATE_SECONDS, min_answers=3
        )

    for name, fn in (("before", before), ("live", live), ("stored", real)):
        discovery.scorecards = fn  # type: ignore[assignment]
        ms = []
        for _ in range(repeat):
            start = time.perf_counter()
            got = await discovery.list_work(
                db, worker_id=worker, page=params, scan_batch=200, stats_ttl=0
            )
            ms.append((time.perf_counter() - start) * 1000)
        assert len(got.items) == page
        print(summary(name, ms) + "  (whole listing page)", flush=True)
    discovery.scorecards = real  # type: ignore[assignment]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--requesters", type=int, default=200)
    parser.add_argument("--projects", type=int, default=50, help="published projects each")
    parser.add_argument("--answers", type=int, default=20, help="decided answers per project")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("--database-url or DATABASE_URL is required")
    admin = await asyncpg.connect(args.database_url)
    name = f"bench_scorecard_{uuid.uuid4().hex[:8]}"
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
        start = time.perf_counter()
        await setup(url, requesters=args.requesters, projects=args.projects, answers=args.answers)
        print(
            f"{args.requesters} requesters x {args.projects} published projects x "
            f"{args.answers} decided answers (setup {time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        await measure(url, page=args.page, repeat=args.repeat)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
