"""Races on real concurrent requests against real Postgres: time is counted once, the idle timer
and a late heartbeat agree, and the budget is never exceeded by a second."""

from __future__ import annotations

import asyncio

import httpx

from tests.fixtures.accounts import create_worker
from tests.fixtures.hourly import (
    frozen_tasks_clock,
    heartbeat,
    hourly_project,
    open_session,
    opened,
    runner,
)


async def test_concurrent_heartbeats_count_the_time_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        for _ in range(3):
            clock.advance(100)
            responses = await asyncio.gather(
                *(heartbeat(tasks_client, worker, session["id"]) for _ in range(12))
            )
            assert [r.status_code for r in responses] == [200] * 12
    row = await db.fetchrow(
        "SELECT s.seconds_worked, s.activity_events, t.seconds_worked AS sheet, b.used_seconds "
        "FROM work_sessions s JOIN timesheets t ON t.id = s.timesheet_id "
        "JOIN hourly_budgets b ON b.project_id = s.project_id WHERE s.id = $1",
        session["id"],
    )
    assert tuple(row) == (300, 37, 300, 300)


async def test_a_heartbeat_racing_the_idle_timer_gets_the_same_answer_either_way(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, idle_timeout_seconds=60
    )
    crowd = [await create_worker(workers_client) for _ in range(6)]
    with frozen_tasks_clock(apps["tasks"]) as clock:
        sessions = [await opened(tasks_client, w, project.id) for w in crowd]
        timers = [runner(apps, clock), runner(apps, clock)]
        clock.advance(60)  # exactly on the deadline: still alive, paid, and the timer waits
        on_time = await asyncio.gather(
            *(heartbeat(tasks_client, w, s["id"]) for w, s in zip(crowd, sessions, strict=True)),
            *(t.run_batch("work_sessions") for t in timers),
        )
        assert [r.status_code for r in on_time[:6]] == [200] * 6
        # (The timers act on every due session of the database, so only this project's count.)
        assert (
            await db.fetchval(
                "SELECT count(*) FROM work_sessions WHERE project_id = $1 AND status = 'open'",
                project.id,
            )
            == 6
        )
        clock.advance(60.5)  # half a second past: over, whoever comes first
        late = await asyncio.gather(
            *(heartbeat(tasks_client, w, s["id"]) for w, s in zip(crowd, sessions, strict=True)),
            *(t.run_batch("work_sessions") for t in timers),
        )
    assert [r.status_code for r in late[:6]] == [409] * 6
    assert {r.json()["code"] for r in late[:6]} == {"session_ended"}
    assert sum(late[6:]) >= 6  # each of them ended by one of the two timers
    rows = await db.fetch(
        "SELECT status, ended_reason, seconds_worked, ended_at - last_activity_at AS idle "
        "FROM work_sessions WHERE project_id = $1",
        project.id,
    )
    assert {(r["status"], r["ended_reason"], r["seconds_worked"]) for r in rows} == {
        ("ended", "idle", 60)
    }
    assert {r["idle"].total_seconds() for r in rows} == {60}


async def test_sessions_racing_for_the_last_budget_seconds_never_exceed_it(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, budget_hours=0.25
    )  # 900 s
    crowd = [await create_worker(workers_client) for _ in range(8)]
    with frozen_tasks_clock(apps["tasks"]) as clock:
        sessions = [await opened(tasks_client, w, project.id) for w in crowd]
        clock.advance(100)  # 800 s wanted of 900
        first = await asyncio.gather(
            *(heartbeat(tasks_client, w, s["id"]) for w, s in zip(crowd, sessions, strict=True))
        )
        assert [r.json()["seconds_worked"] for r in first] == [100] * 8
        clock.advance(37)  # 8 x 37 = 296 wanted, 100 left: someone is cut
        last = await asyncio.gather(
            *(heartbeat(tasks_client, w, s["id"]) for w, s in zip(crowd, sessions, strict=True))
        )
        newcomer = await create_worker(workers_client)
        refused = await open_session(tasks_client, newcomer, project.id)
    assert refused.status_code == 409 and refused.json()["code"] == "budget_exhausted"
    granted = sorted(r.json()["seconds_worked"] - 100 for r in last if r.status_code == 200)
    assert sum(granted) == 100, [r.text for r in last]
    assert all(r.status_code in (200, 409) for r in last)
    totals = await db.fetchrow(
        "SELECT b.used_seconds, b.budget_seconds, "
        "(SELECT sum(seconds_worked) FROM work_sessions WHERE project_id = $1) AS sessions, "
        "(SELECT sum(seconds_worked) FROM timesheets WHERE project_id = $1) AS sheets, "
        "(SELECT count(*) FROM work_sessions WHERE project_id = $1 AND status = 'open') AS open "
        "FROM hourly_budgets b WHERE b.project_id = $1",
        project.id,
    )
    assert (totals["used_seconds"], totals["sessions"], totals["sheets"]) == (900, 900, 900)
    assert totals["budget_seconds"] == 900
    # Every session that reached the end of the budget ended; the others end at their next
    # event or by the timer.
    await runner(apps, clock).run_batch("work_sessions")
    assert (
        await db.fetchval(
            "SELECT count(*) FROM work_sessions WHERE project_id = $1 AND status = 'open'",
            project.id,
        )
        == 0
    )


async def test_concurrent_heartbeats_crossing_the_weekly_cap_stop_exactly_at_it(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, max_hours_per_worker_per_week=0.1
    )  # 360 s
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        clock.advance(290)
        assert (await heartbeat(tasks_client, worker, session["id"])).status_code == 200
        clock.advance(100)  # 70 s to the cap
        responses = await asyncio.gather(
            *(heartbeat(tasks_client, worker, session["id"]) for _ in range(10))
        )
    ok = [r.json() for r in responses if r.status_code == 200]
    refused = [r.json()["code"] for r in responses if r.status_code != 200]
    assert len(ok) == 1 and ok[0]["seconds_worked"] == 360, [r.text for r in responses]
    assert ok[0]["ended_reason"] == "weekly_hours_exhausted"
    assert refused == ["weekly_hours_exhausted"] * 9
    row = await db.fetchrow(
        "SELECT t.seconds_worked, b.used_seconds FROM timesheets t "
        "JOIN hourly_budgets b ON b.project_id = t.project_id WHERE t.worker_id = $1",
        worker.id,
    )
    assert tuple(row) == (360, 360)
