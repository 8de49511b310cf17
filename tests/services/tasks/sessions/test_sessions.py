"""Work sessions: time measured by the server, the idle timeout, the weekly cap, the budget, and
the refusals (someone else's session, an ended one, a per-answer project)."""

from __future__ import annotations

import httpx

from tests.fixtures.accounts import create_worker
from tests.fixtures.hourly import (
    end,
    frozen_tasks_clock,
    heartbeat,
    hourly_project,
    open_session,
    opened,
)


async def test_time_is_the_gaps_between_events_within_the_idle_timeout(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        assert (session["status"], session["seconds_worked"]) == ("open", 0)
        clock.advance(120.7)
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 200, resp.text
        assert resp.json()["seconds_worked"] == 120
        clock.advance(300)  # exactly the idle timeout after the last counted second: still paid
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.json()["seconds_worked"] == 420  # the 0.7 s carried over
        clock.advance(59.3)
        resp = await end(tasks_client, worker, session["id"])
        body = resp.json()
        assert (body["status"], body["ended_reason"], body["seconds_worked"]) == (
            "ended",
            "worker",
            480,
        )
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 409 and resp.json()["code"] == "session_ended", resp.text
    sheet = await db.fetchrow(
        "SELECT seconds_worked, sessions FROM timesheets WHERE worker_id = $1", worker.id
    )
    assert (sheet["seconds_worked"], sheet["sessions"]) == (480, 1)
    used = await db.fetchval(
        "SELECT used_seconds FROM hourly_budgets WHERE project_id = $1", project.id
    )
    assert used == 480


async def test_a_gap_longer_than_the_idle_timeout_ends_the_session_unpaid(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, idle_timeout_seconds=60
    )
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        clock.advance(30)
        assert (await heartbeat(tasks_client, worker, session["id"])).json()["seconds_worked"] == 30
        clock.advance(61)
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 409 and resp.json()["code"] == "session_ended", resp.text
        # A new session may be opened at once; the idle one ends at its deadline, unpaid after
        # its last event.
        second = await opened(tasks_client, worker, project.id)
        assert second["id"] != session["id"]
    row = await db.fetchrow(
        "SELECT status, ended_reason, ended_at - last_activity_at AS idle, seconds_worked "
        "FROM work_sessions WHERE id = $1",
        session["id"],
    )
    assert (
        row["status"],
        row["ended_reason"],
        row["idle"].total_seconds(),
        row["seconds_worked"],
    ) == (
        "ended",
        "idle",
        60,
        30,
    )


async def test_one_open_session_per_worker_and_project(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]):
        session = await opened(tasks_client, worker, project.id)
        resp = await open_session(tasks_client, worker, project.id)
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "session_already_open"
    assert resp.json()["session_id"] == session["id"]


async def test_someone_elses_session_is_not_found_and_bad_input_changes_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    owner, other = await create_worker(workers_client), await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, owner, project.id)
        clock.advance(100)
        for call in (heartbeat, end):
            resp = await call(tasks_client, other, session["id"])
            assert resp.status_code == 404, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
        resp = await tasks_client.get(f"/v1/work/sessions/{session['id']}", headers=other.headers)
        assert resp.status_code == 404
        resp = await heartbeat(tasks_client, other, "no-such-session")
        assert resp.status_code == 404
    row = await db.fetchrow(
        "SELECT status, seconds_worked, activity_events FROM work_sessions WHERE id = $1",
        session["id"],
    )
    assert tuple(row) == ("open", 0, 1)


async def test_an_hourly_project_needs_its_terms(
    tasks_client: httpx.AsyncClient, workers_client
) -> None:
    from tests.fixtures.accounts import create_requester
    from tests.fixtures.hourly import HOURLY_DEFAULTS

    requester = await create_requester(workers_client)
    cases = [
        ({k: v for k, v in HOURLY_DEFAULTS.items() if k != "hourly_rate"}, "hourly_rate"),
        ({k: v for k, v in HOURLY_DEFAULTS.items() if k != "budget_hours"}, "budget_hours"),
        ({**HOURLY_DEFAULTS, "reward": "0.10"}, "reward"),
        ({**HOURLY_DEFAULTS, "pay_model": "per_assignment", "reward": "0.10"}, "hourly_rate"),
        ({**HOURLY_DEFAULTS, "budget_hours": 0}, "budget_hours"),
        ({**HOURLY_DEFAULTS, "budget_hours": 1.005}, "budget_hours"),
        ({**HOURLY_DEFAULTS, "idle_timeout_seconds": 5}, "idle_timeout_seconds"),
        ({**HOURLY_DEFAULTS, "hourly_rate": 18}, "hourly_rate"),
    ]
    before = await tasks_client.get("/v1/projects", headers=requester.headers)
    for body, field in cases:
        resp = await tasks_client.post("/v1/projects", json=body, headers=requester.headers)
        assert resp.status_code == 422, (field, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert any(field in e["loc"] for e in resp.json()["errors"]), (field, resp.json())
    after = await tasks_client.get("/v1/projects", headers=requester.headers)
    assert after.json()["items"] == before.json()["items"] == []


async def test_publish_reserves_the_budget_and_close_releases_what_was_not_earned(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    from tests.fixtures.hourly import close_project
    from tests.fixtures.tasks import balance, held, wait_delivered

    project = await hourly_project(
        tasks_client, workers_client, payments_client, budget_hours=2, hourly_rate="18.00"
    )
    # 2 h x 18.00 = 36.00, fee 20% = 7.20.
    assert await held(db, project.id) == 4320
    assert project.project["money"]["reserved"] == "43.20"
    assert (project.project["pay_model"], project.project["hourly_rate"]) == ("hourly", "18.00")
    assert (project.project["budget_hours"], project.project["reward"]) == (2, "0.00")
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        for _ in range(6):
            clock.advance(300)
            assert (await heartbeat(tasks_client, worker, session["id"])).status_code == 200
        closed = await close_project(tasks_client, project.requester, project.id)
    # 30 min worked = 9.00 + 1.80 fee stays for the timesheet; the rest goes back.
    await wait_delivered(db, [f"release:hourly:{project.id}"], apps)
    assert await held(db, project.id) == 1080
    assert closed["money"]["reserved"] == "10.80"
    assert (await balance(payments_client, project.requester))["available"] == 4320 - 1080
    row = await db.fetchrow(
        "SELECT status, ended_reason FROM work_sessions WHERE id = $1", session["id"]
    )
    assert tuple(row) == ("ended", "project_closed")


async def test_pausing_ends_the_open_sessions_and_nothing_accrues_while_paused(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker, other = await create_worker(workers_client), await create_worker(workers_client)
    headers = project.requester.headers
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        clock.advance(100)
        assert (await heartbeat(tasks_client, worker, session["id"])).status_code == 200
        resp = await tasks_client.post(f"/v1/projects/{project.id}/pause", headers=headers)
        assert resp.status_code == 200, resp.text
        clock.advance(120)  # within the idle timeout: a live session would be paid this gap
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 409 and resp.json()["code"] == "session_ended", resp.text
        mine = await tasks_client.get(f"/v1/work/sessions/{session['id']}", headers=worker.headers)
        body = mine.json()
        assert (body["status"], body["ended_reason"], body["seconds_worked"]) == (
            "ended",
            "project_paused",
            100,
        )
        # No session opens in a paused project; after the resume one does, from zero.
        refused = await open_session(tasks_client, other, project.id)
        assert refused.status_code == 404, refused.text
        resp = await tasks_client.post(f"/v1/projects/{project.id}/resume", headers=headers)
        assert resp.status_code == 200, resp.text
        again = await opened(tasks_client, worker, project.id)
        clock.advance(60)
        resp = await heartbeat(tasks_client, worker, again["id"])
        assert resp.status_code == 200 and resp.json()["seconds_worked"] == 60
    sheet = await db.fetchval(
        "SELECT seconds_worked FROM timesheets WHERE worker_id = $1", worker.id
    )
    used = await db.fetchval(
        "SELECT used_seconds FROM hourly_budgets WHERE project_id = $1", project.id
    )
    assert sheet == used == 160  # 100 before the pause + 60 after the resume, not the 120 between


async def test_an_event_in_a_project_no_longer_published_counts_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    # A session the pause did not see (opened as it committed) is still guarded by the event
    # statement itself: no time accrues outside a published project.
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    with frozen_tasks_clock(apps["tasks"]) as clock:
        session = await opened(tasks_client, worker, project.id)
        await db.execute("UPDATE projects SET status = 'paused' WHERE id = $1", project.id)
        clock.advance(60)
        resp = await heartbeat(tasks_client, worker, session["id"])
        assert resp.status_code == 409 and resp.json()["code"] == "session_ended", resp.text
    used = await db.fetchval(
        "SELECT used_seconds FROM hourly_budgets WHERE project_id = $1", project.id
    )
    assert used == 0
