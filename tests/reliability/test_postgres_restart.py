"""Postgres restarts under load: the services recover by themselves and nothing is half-done.

The test runs its own Postgres server (a throwaway embedded cluster: about half a second to
create), so restarting it disturbs no other test and works whatever DATABASE_URL says.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.fixtures.accounts import Actor
from tests.fixtures.tasks import (
    accept,
    approve,
    cat_tasks,
    published_project,
    submit,
    workers,
)
from tests.reliability.conftest import create_migrated_database
from tests.reliability.helpers import (
    assert_nothing_half_changed,
    ledger_check,
    outbox_stats,
    wait_for,
)

SERVICES = ("tasks", "workers", "payments")


@pytest.fixture
def own_postgres(tmp_path: Path):
    from devtools.embedded_pg import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg", fast=True)
    server = pg.start()
    try:
        yield pg, create_migrated_database(server)
    finally:
        pg.stop()


class Load:
    """Workers accept and submit, the requester approves, in a loop, counting outcomes."""

    def __init__(self, tasks: httpx.AsyncClient, requester: Actor, project_id: str) -> None:
        self.tasks = tasks
        self.requester = requester
        self.project_id = project_id
        self.ok = 0
        self.failed = 0
        self.ok_after: float | None = None  # successes once this monotonic time has passed
        self.ok_late = 0
        self.stop = asyncio.Event()

    def _count(self, good: bool) -> None:
        if good:
            self.ok += 1
            if self.ok_after is not None and time.monotonic() > self.ok_after:
                self.ok_late += 1
        else:
            self.failed += 1

    async def _call(self, request) -> httpx.Response | None:
        try:
            resp = await request
        except httpx.HTTPError:
            self._count(False)
            return None
        # During the restart a request may fail, as 503 dependency_unavailable with Retry-After
        # (the database is a dependency that is down); a 4xx or a 500 would be a wrong answer.
        if resp.status_code >= 400:
            assert resp.status_code == 503, (resp.status_code, resp.text)
            assert resp.json()["code"] == "dependency_unavailable"
            assert int(resp.headers["Retry-After"]) >= 1
        self._count(resp.status_code < 400)
        return resp if resp.status_code < 400 else None

    async def worker_loop(self, worker: Actor) -> None:
        while not self.stop.is_set():
            got = await self._call(accept(self.tasks, worker, self.project_id))
            if got is None:
                await asyncio.sleep(0.05)
                continue
            assignment_id = got.json()["assignment_id"]
            done = None
            while done is None and not self.stop.is_set():
                done = await self._call(submit(self.tasks, worker, assignment_id, {"label": "cat"}))
                if done is None:
                    await asyncio.sleep(0.05)
            approved = None
            while done is not None and approved is None and not self.stop.is_set():
                approved = await self._call(approve(self.tasks, self.requester, assignment_id))
                if approved is None:
                    await asyncio.sleep(0.05)


async def test_services_recover_from_a_postgres_restart_under_load(
    own_postgres, make_stack, clients_for
) -> None:
    pg, database_url = own_postgres
    stack = make_stack(database_url)
    stack.start_all(*SERVICES)
    api = clients_for(stack)
    project = await published_project(
        api.tasks, api.workers, api.payments, tasks=cat_tasks(400), assignments_per_task=3
    )
    crowd = await workers(api.workers, 12)
    load = Load(api.tasks, project.requester, project.id)
    runners = [asyncio.create_task(load.worker_loop(w)) for w in crowd]
    try:
        # The load must be flowing before the restart (a loaded machine may take more than a
        # moment for the first cycles): wait for it, then a little more.
        for _ in range(300):
            if load.ok >= 12:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        before = load.ok
        assert before > 0 and load.failed == 0, (before, load.failed)

        await asyncio.to_thread(pg.restart)
        back = time.monotonic()

        async def ready(svc: str) -> bool:
            async with httpx.AsyncClient(base_url=stack.urls[svc], timeout=2) as client:
                return (await client.get("/readyz")).status_code == 200

        for svc in SERVICES:
            took = await wait_for(
                lambda svc=svc: ready(svc), within=10, what=f"{svc} /readyz after the restart"
            )
            assert time.monotonic() - back <= 10, (svc, took)
        recovered = time.monotonic() - back
        load.ok_after = time.monotonic()
        await asyncio.sleep(2)
    finally:
        load.stop.set()
        outcomes = await asyncio.gather(*runners, return_exceptions=True)
    assert not [o for o in outcomes if o is not None], outcomes  # no wrong answer (a 4xx)
    print(
        f"\nready {recovered:.1f}s after Postgres was back; requests ok {load.ok},"
        f" failed {load.failed}, ok after recovery {load.ok_late}"
    )
    assert load.ok_late > 0, "no request succeeded after the services were ready again"

    # A fresh round trip works, and everything committed is consistent.
    worker = crowd[random.randrange(len(crowd))]
    got = await accept(api.tasks, worker, project.id)
    assert got.status_code == 201, got.text
    assignment_id = got.json()["assignment_id"]
    assert (await submit(api.tasks, worker, assignment_id, {"label": "dog"})).status_code == 200
    assert (await approve(api.tasks, project.requester, assignment_id)).status_code == 200

    async def settled() -> bool:
        stats = await outbox_stats(api.tasks)
        return stats["pending"] == 0 and stats["parked"] == 0

    await wait_for(settled, within=15, what="outbox delivered after the restart")
    report = await ledger_check(api.payments)
    assert report["ok"], report
    conn = await asyncpg.connect(database_url)
    try:
        await assert_nothing_half_changed(conn)
    finally:
        await conn.close()
