"""The weekly cap and the budget met to the second, and accept/submit inside a session."""

from __future__ import annotations

import httpx

from tests.fixtures.accounts import create_worker
from tests.fixtures.hourly import (
    frozen_tasks_clock,
    heartbeat,
    hourly_project,
    open_session,
    opened,
)
from tests.fixtures.tasks import accept, submit


async def test_the_weekly_cap_cuts_the_time_exactly_and_ends_the_session(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, max_hours_per_worker_per_week=0.1
    )  # 360 s a week
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        clock.advance(250)
        assert (await heartbeat(tasks_client, worker, session["id"])).json()[
            "seconds_worked"
        ] == 250
        clock.advance(200)  # the cap is reached mid-gap, 110 s in
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["status"], body["ended_reason"], body["seconds_worked"]) == (
            "ended",
            "weekly_hours_exhausted",
            360,
        )
        clock.advance(10)
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 403 and resp.json()["code"] == "weekly_hours_exhausted"
        resp = await open_session(tasks_client, worker, project.id)
        assert resp.status_code == 403 and resp.json()["code"] == "weekly_hours_exhausted"
        resp = await accept(tasks_client, worker, project.id)
        assert resp.status_code == 403 and resp.json()["code"] == "weekly_hours_exhausted"
        # Next ISO week the worker may work again.
        clock.advance(7 * 86_400)
        again = await opened(tasks_client, worker, project.id)
        assert again["week_start"] != session["week_start"]
    seconds = await db.fetch(
        "SELECT seconds_worked FROM timesheets WHERE worker_id = $1 ORDER BY week_start", worker.id
    )
    assert [r["seconds_worked"] for r in seconds] == [360, 0]


async def test_a_used_up_budget_ends_sessions_and_refuses_new_ones(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, budget_hours=0.05
    )  # 180 s
    first, second = await create_worker(workers_client), await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        a = await opened(tasks_client, first, project.id)
        b = await opened(tasks_client, second, project.id)
        clock.advance(100)
        assert (await heartbeat(tasks_client, first, a["id"])).json()["seconds_worked"] == 100
        resp = await heartbeat(tasks_client, second, b["id"])
        body = resp.json()
        assert (body["seconds_worked"], body["status"], body["ended_reason"]) == (
            80,
            "ended",
            "budget_exhausted",
        )
        clock.advance(10)
        resp = await heartbeat(tasks_client, first, a["id"])  # nothing left for it either
        if resp.status_code == 200:
            assert (resp.json()["seconds_worked"], resp.json()["status"]) == (100, "ended")
        else:  # the session's timer ended it first (open sessions of a used-up budget)
            assert resp.status_code == 409 and resp.json()["code"] == "budget_exhausted"
        third = await create_worker(workers_client)
        resp = await open_session(tasks_client, third, project.id)
        assert resp.status_code == 409 and resp.json()["code"] == "budget_exhausted"
    used = await db.fetchval(
        "SELECT used_seconds FROM hourly_budgets WHERE project_id = $1", project.id
    )
    assert used == 180


async def test_accept_and_submit_need_a_session_and_count_as_activity(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client, tasks=3)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        resp = await accept(tasks_client, worker, project.id)
        assert resp.status_code == 409 and resp.json()["code"] == "work_session_required"
        session = await opened(tasks_client, worker, project.id)
        clock.advance(200)
        resp = await accept(tasks_client, worker, project.id)
        assert resp.status_code == 201, resp.text
        work = resp.json()
        assert work["reward"] == "0.00"
        clock.advance(250)  # within the idle timeout of the accept, not of the open
        resp = await submit(tasks_client, worker, work["assignment_id"], {"text": "hello there"})
        assert resp.status_code == 200, resp.text
        got = await tasks_client.get(f"/v1/work/sessions/{session['id']}", headers=worker.headers)
        assert (got.json()["seconds_worked"], got.json()["activity_events"]) == (450, 3)
        # A submit without a live session is refused and changes nothing.
        work2 = (await accept(tasks_client, worker, project.id)).json()
        clock.advance(301)
        resp = await submit(tasks_client, worker, work2["assignment_id"], {"text": "late"})
        assert resp.status_code == 409 and resp.json()["code"] == "work_session_required"
    status = await db.fetchval(
        "SELECT status FROM assignments WHERE id = $1", work2["assignment_id"]
    )
    assert status == "accepted"


async def test_a_per_answer_project_has_no_sessions(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    from tests.fixtures.tasks import cat_tasks, published_project

    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    resp = await open_session(tasks_client, worker, project.id)
    assert resp.status_code == 409 and resp.json()["code"] == "not_hourly"
    resp = await open_session(tasks_client, worker, "NOPROJECT")
    assert resp.status_code == 404


async def test_a_session_ends_with_its_iso_week(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    from datetime import timedelta

    from tests.fixtures.hourly import a_future_monday, runner

    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    monday = a_future_monday(hour=0)
    with frozen_tasks_clock(apps["tasks"], at=monday - timedelta(seconds=120)) as clock:
        session = await opened(tasks_client, worker, project.id)
        assert session["week_start"] == (monday - timedelta(days=7)).date().isoformat()
        clock.advance(90)
        body = (await heartbeat(tasks_client, worker, session["id"])).json()
        assert body["seconds_worked"] == 90
        assert body["expires_at"].startswith(monday.date().isoformat() + "T00:00:00")
        clock.advance(40)  # 10 s into the next week: the session is over
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 409 and resp.json()["code"] == "session_ended"
        await runner(apps, clock).run_batch("work_sessions")
        ended = await tasks_client.get(f"/v1/work/sessions/{session['id']}", headers=worker.headers)
        assert (ended.json()["status"], ended.json()["ended_reason"]) == ("ended", "week_ended")
        assert ended.json()["ended_at"].startswith(monday.date().isoformat() + "T00:00:00")
        fresh = await opened(tasks_client, worker, project.id)
        assert fresh["week_start"] == monday.date().isoformat()
        assert fresh["timesheet_id"] != session["timesheet_id"]
        listed = await tasks_client.get(
            "/v1/work/sessions",
            params={"project_id": project.id, "status": "ended"},
            headers=worker.headers,
        )
        assert [s["id"] for s in listed.json()["items"]] == [session["id"]]
    sheets = await db.fetch(
        "SELECT week_start, seconds_worked FROM timesheets WHERE worker_id = $1 "
        "ORDER BY week_start",
        worker.id,
    )
    assert [r["seconds_worked"] for r in sheets] == [90, 0]


async def test_an_answer_in_hand_is_taken_after_the_requester_paused_the_project(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client, tasks=3)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        clock.advance(60)
        work = (await accept(tasks_client, worker, project.id)).json()
        resp = await tasks_client.post(
            f"/v1/projects/{project.id}/pause", headers=project.requester.headers
        )
        assert resp.status_code == 200, resp.text
        clock.advance(90)
        # The pause ended the session, not the worker: the answer is taken, the 90 s are not
        # paid (no work could be taken while paused).
        resp = await submit(tasks_client, worker, work["assignment_id"], {"text": "hello"})
        assert resp.status_code == 200, resp.text
        got = await tasks_client.get(f"/v1/work/sessions/{session['id']}", headers=worker.headers)
        assert (got.json()["ended_reason"], got.json()["seconds_worked"]) == ("project_paused", 60)
