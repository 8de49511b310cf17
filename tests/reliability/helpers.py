"""What the fault tests share: building work over the API, waiting, and the invariants."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from tests.fixtures.accounts import Actor
from tests.fixtures.tasks import (
    Published,
    accepted,
    cat_tasks,
    published_project,
    submit,
    workers,
)
from tests.reliability.conftest import INTERNAL


async def submitted_work(
    tasks: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments: httpx.AsyncClient,
    *,
    n_workers: int,
    per_worker: int,
    **project: Any,
) -> tuple[Published, list[Actor], list[str]]:
    """A published project with n_workers * per_worker tasks, every one accepted and submitted
    (workers in parallel, each one's tasks in turn); returns the project, workers and
    assignment ids."""
    published = await published_project(
        tasks, workers_client, payments, tasks=cat_tasks(n_workers * per_worker), **project
    )
    crowd = await workers(workers_client, n_workers)

    async def work(worker: Actor) -> list[str]:
        ids = []
        for _ in range(per_worker):
            got = await accepted(tasks, worker, published.id)
            resp = await submit(tasks, worker, got["assignment_id"], {"label": "cat"})
            assert resp.status_code == 200, resp.text
            ids.append(got["assignment_id"])
        return ids

    ids = [i for batch in await asyncio.gather(*(work(w) for w in crowd)) for i in batch]
    return published, crowd, ids


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.1
) -> float:
    """Poll `check` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except (httpx.HTTPError, OSError, asyncpg.PostgresError):
            pass
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(every)


async def outbox_stats(tasks: httpx.AsyncClient) -> dict[str, Any]:
    resp = await tasks.get("/internal/outbox/stats", headers=INTERNAL)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def ledger_check(payments: httpx.AsyncClient) -> dict[str, Any]:
    resp = await payments.get("/internal/ledger/check", headers=INTERNAL)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def assert_nothing_half_changed(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """The invariants the schema implies, over every assignment and task in the database."""
    broken = await conn.fetch(
        """
        SELECT id, status FROM assignments WHERE NOT CASE status
            WHEN 'accepted' THEN deadline IS NOT NULL AND submitted_at IS NULL
                AND answer IS NULL AND reviewed_at IS NULL
            WHEN 'submitted' THEN submitted_at IS NOT NULL AND answer IS NOT NULL
                AND auto_approve_at IS NOT NULL AND reviewed_at IS NULL
            WHEN 'approved' THEN submitted_at IS NOT NULL AND answer IS NOT NULL
                AND reviewed_at IS NOT NULL
            WHEN 'rejected' THEN submitted_at IS NOT NULL AND reviewed_at IS NOT NULL
            WHEN 'returned' THEN ended_at IS NOT NULL AND submitted_at IS NULL
            WHEN 'expired' THEN ended_at IS NOT NULL AND submitted_at IS NULL
        END
        """
    )
    assert not broken, [dict(r) for r in broken]
    # Slots: approved_slots counts approvals paid from the reservation (an overridden rejection
    # is paid from the available balance and consumes none), and an open task of a live project
    # has every other slot open or held by live work.
    slots = await conn.fetch(
        """
        SELECT t.id, t.status, t.max_assignments, t.open_slots, t.approved_slots,
               p.status AS project_status,
               count(a.id) FILTER (WHERE a.status IN ('accepted', 'submitted')) AS live,
               count(a.id) FILTER (WHERE a.status = 'approved') AS approved
        FROM tasks t JOIN projects p ON p.id = t.project_id
        LEFT JOIN assignments a ON a.task_id = t.id
        GROUP BY t.id, p.status
        """
    )
    wrong = [
        dict(s)
        for s in slots
        if s["approved_slots"] > s["approved"]
        or (
            s["status"] == "open"
            and s["project_status"] in ("published", "paused")
            and s["open_slots"] != s["max_assignments"] - s["live"] - s["approved_slots"]
        )
        or (s["status"] != "open" and s["open_slots"] != 0)
    ]
    assert not wrong, wrong
    # Money: every approved assignment was paid exactly once, nothing else was.
    payouts = await conn.fetch(
        """
        SELECT a.id, a.status, count(l.id) AS paid
        FROM assignments a LEFT JOIN ledger_transactions l
            ON l.assignment_id = a.id AND l.kind = 'payout'
        GROUP BY a.id, a.status
        HAVING count(l.id) <> CASE WHEN a.status = 'approved' THEN 1 ELSE 0 END
        """
    )
    assert not payouts, [dict(r) for r in payouts]
    # Holds: each project's hold is its open and live slots' money, nothing more or less.
    holds = await conn.fetch(
        """
        WITH need AS (
            SELECT p.id, (p.reward_cents + p.fee_cents) * (
                coalesce(sum(t.open_slots), 0) + (
                    SELECT count(*) FROM assignments a
                    WHERE a.project_id = p.id AND a.status IN ('accepted', 'submitted')
                )
            ) AS cents
            FROM projects p LEFT JOIN tasks t ON t.project_id = p.id
            WHERE p.status <> 'draft'
            GROUP BY p.id
        )
        SELECT need.id, need.cents, coalesce(h.held_cents, 0) AS held
        FROM need LEFT JOIN project_holds h ON h.project_id = need.id
        WHERE need.cents <> coalesce(h.held_cents, 0)
        """
    )
    assert not holds, [dict(r) for r in holds]
