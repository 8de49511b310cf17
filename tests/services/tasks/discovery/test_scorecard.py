"""The requester scorecard workers see (`requester_stats`): measured by the platform,
precomputed by a sweep, read with one row per requester."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from services.tasks.discovery import service as discovery
from services.tasks.pay_floor import service as pay_floor
from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import create_assignment, insert_row
from tests.fixtures.projects import funded_published_project, image_tasks, insert_assignment


async def _refresh(apps: dict, *requester_ids: str) -> None:
    async with apps["tasks"].state.database.transaction() as tx:
        await discovery.refresh_scorecards_of(tx, list(requester_ids))


async def _stats(tasks_client: httpx.AsyncClient, viewer: Any, project_id: str) -> dict:
    resp = await tasks_client.get(f"/v1/work/projects/{project_id}", headers=viewer.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _scorecards(apps: dict, requester_id: str) -> dict:
    """The requester's scorecard as of now: the background sweep may have stored one before the
    test wrote its history, so the row is refreshed first (what the sweep does when it is due)."""
    await _refresh(apps, requester_id)
    async with apps["tasks"].state.database.read() as rdb:
        return await discovery.scorecards(rdb, [requester_id], ttl=0)


async def _project_tasks(db, project_id: str) -> list[str]:
    return [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM tasks WHERE project_id = $1 ORDER BY id", project_id
        )
    ]


async def test_scorecard_counts_top_ups_and_floor_and_reads_the_precomputed_row(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    viewer = await create_worker(workers_client)
    requester = await create_requester(workers_client)
    floor = {"reward": "0.10", "assignment_duration_seconds": 600, "min_hourly_rate": "6.00"}
    settled = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(3), **floor
    )
    listed = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(2), **floor
    )
    crowd = [await create_worker(workers_client) for _ in range(3)]
    ids = await _project_tasks(db, settled["id"])
    for task_id, worker, seconds in zip(ids, crowd, [95, 95, 200], strict=True):
        await insert_assignment(
            db,
            task_id=task_id,
            worker_id=worker.id,
            status="approved",
            answer={"label": "cat"},
            working_seconds=seconds,
            review_seconds=60,
        )
    await tasks_client.post(f"/v1/projects/{settled['id']}/close", headers=requester.headers)
    async with apps["tasks"].state.database.transaction() as tx:
        await pay_floor.settle_due(tx, limit=100, grace_seconds=0, recheck_seconds=60)
    assert (
        await db.fetchval(
            "SELECT top_up_cents FROM pay_floor_settlements WHERE project_id = $1", settled["id"]
        )
        == 6
    )  # median 95 s at 6.00/h: 16 cents, reward 10

    await _refresh(apps, requester.id)
    preview = await _stats(tasks_client, viewer, listed["id"])
    # Each answer's pay per hour: 0.16 x 3600 / 95 = 6.06, 6.06, 0.16 x 3600 / 200 = 2.88
    assert preview["requester_stats"] == {
        "approval_rate_given": 100.0,
        "median_review_seconds": 60,
        "effective_hourly_pay": "6.06",
        "timesheets_disputed_rate": None,
        "pay_floor_set": True,
        "rejections_given": 0,
        "appeals_received": 0,
        "appeals_overturned": 0,
    }
    assert preview["min_hourly_rate"] == "6.00" and preview["pay_model"] == "per_assignment"

    # Stored figures are what the listing shows until the next refresh.
    extra = await _project_tasks(db, listed["id"])
    await insert_assignment(
        db,
        task_id=extra[0],
        worker_id=crowd[0].id,
        status="rejected",
        answer={"label": "dog"},
        working_seconds=30,
        review_seconds=60,
    )
    assert (await _stats(tasks_client, viewer, listed["id"]))["requester_stats"][
        "approval_rate_given"
    ] == 100.0
    await _refresh(apps, requester.id)
    assert (await _stats(tasks_client, viewer, listed["id"]))["requester_stats"][
        "approval_rate_given"
    ] == 75.0


async def test_hourly_rates_count_as_such_and_disputed_timesheets_are_a_share(
    apps, workers_client, db
) -> None:
    requester = await create_requester(workers_client)
    project_id = new_id()
    await insert_row(
        db,
        "projects",
        {
            "id": project_id,
            "requester_id": requester.id,
            "status": "published",
            "title": "Transcribe",
            "task_type": "transcription",
            "reward_cents": 0,
            "fee_cents": 0,
            "assignment_duration_seconds": 600,
            "lifetime_seconds": 86_400,
            "auto_approve_seconds": 3_600,
            "pay_model": "hourly",
            "hourly_rate_cents": 1_800,
            "budget_seconds": 36_000,
            "idle_timeout_seconds": 300,
        },
    )
    workers = [await create_worker(workers_client) for _ in range(4)]
    for worker in workers[:3]:
        await create_assignment(
            db,
            requester_id=requester.id,
            worker_id=worker.id,
            project_id=project_id,
            status="approved",
            reward_cents=0,
            work_seconds=7,  # an hourly answer's own time does not make its rate
        )
    monday = date.today() - timedelta(days=date.today().weekday())
    for worker, disputed, approved in (
        (workers[0], True, True),
        (workers[1], False, True),
        (workers[2], False, True),
        (workers[3], False, False),  # not reviewed yet: not counted
    ):
        now = datetime.now(UTC)
        await insert_row(
            db,
            "timesheets",
            {
                "id": new_id(),
                "project_id": project_id,
                "worker_id": worker.id,
                "requester_id": requester.id,
                "week_start": monday,
                "seconds_worked": 3_600,
                "status": "approved" if approved else "open",
                # never due: the timesheet sweeps of other tests (same database, clocks frozen
                # up to ~2070) must not take these hand-made rows, which have no hourly budget
                "auto_approve_at": datetime(2999, 1, 1, tzinfo=UTC),
                "disputed_at": now if disputed else None,
                "approved_at": now if approved else None,
                "paid_seconds": 3_600 if approved else None,
            },
        )
    cards = await _scorecards(apps, requester.id)
    stats = discovery.requester_stats(cards.get(requester.id), pay_floor_set=False)
    assert stats.effective_hourly_pay == 1_800
    assert stats.timesheets_disputed_rate == 33.3


async def test_little_measured_work_gives_no_effective_pay(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(4)
    )
    ids = await _project_tasks(db, project["id"])
    for task_id in ids[:3]:  # three answers of 10 s: 30 s of work in all
        worker = await create_worker(workers_client)
        await insert_assignment(
            db, task_id=task_id, worker_id=worker.id, status="approved", working_seconds=10
        )
    cards = await _scorecards(apps, requester.id)
    assert cards[requester.id].approved == 3
    assert cards[requester.id].effective_hourly_cents is None


async def test_the_sweep_refreshes_missing_and_stale_scorecards_once_across_replicas(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    requester = await create_requester(workers_client)
    await funded_published_project(tasks_client, payments_client, requester, tasks=image_tasks(1))
    await db.execute("DELETE FROM requester_scorecards WHERE requester_id = $1", requester.id)

    async def sweep() -> int:
        async with apps["tasks"].state.database.transaction() as tx:
            return await discovery.refresh_scorecards(tx, limit=10_000, max_age_seconds=3_600)

    await asyncio.gather(sweep(), sweep(), sweep())
    first = await db.fetchval(
        "SELECT refreshed_at FROM requester_scorecards WHERE requester_id = $1", requester.id
    )
    assert first is not None
    await sweep()  # young enough: left alone
    assert (
        await db.fetchval(
            "SELECT refreshed_at FROM requester_scorecards WHERE requester_id = $1", requester.id
        )
        == first
    )
