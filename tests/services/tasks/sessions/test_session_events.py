"""Heartbeats coalesced (services/tasks/sessions/service.py `session_events`): many sessions'
events in one statement (SESSION_EVENTS_SQL) obey the rules one event at a time obeys. The
statement is driven directly with chosen batches, so each rule meets the case a batch makes
possible (sessions of one project drawing on its budget in one statement), and through real
concurrent requests, which must really share statements."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from services.tasks.sessions.repository import (
    ACTIVITY_BY_PROJECT_SQL,
    SESSION_EVENTS_SQL,
    SessionEvent,
    record_session_events,
)
from tests.fixtures.accounts import create_worker
from tests.fixtures.hourly import frozen_tasks_clock, heartbeat, hourly_project, opened


async def _events(apps: dict, events: list[SessionEvent]) -> dict:
    async with apps["tasks"].state.database.autocommit(hot=True) as db:
        return await record_session_events(db, events)


async def test_sessions_of_one_project_draw_on_its_budget_in_order_within_one_statement(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(
        tasks_client, workers_client, payments_client, budget_hours=0.25
    )  # 900 s
    crowd = [await create_worker(workers_client) for _ in range(6)]
    with frozen_tasks_clock(apps["tasks"]) as clock:
        sessions = [await opened(tasks_client, w, project.id) for w in crowd]
        start = clock.now
    by_id = sorted(zip(sessions, crowd, strict=True), key=lambda pair: pair[0]["id"])
    at = start + timedelta(seconds=100)
    first = await _events(apps, [SessionEvent(s["id"], w.id, at) for s, w in by_id])
    assert [first[s["id"]].granted for s, _ in by_id] == [100] * 6  # 600 of 900
    # 6 x 70 = 420 wanted, 300 left: the first four in id order get 70, 70, 70, 70 (280), the
    # fifth the last 20, the sixth nothing; the budget's end ends the fifth and the sixth.
    at2 = at + timedelta(seconds=70)
    second = await _events(apps, [SessionEvent(s["id"], w.id, at2) for s, w in reversed(by_id)])
    rows = [second[s["id"]] for s, _ in by_id]
    assert [r.granted for r in rows] == [70, 70, 70, 70, 20, 0]
    assert [r.status for r in rows] == ["open"] * 4 + ["ended"] * 2
    assert [r.ended_reason for r in rows[4:]] == ["budget_exhausted"] * 2
    assert [r.seconds_worked for r in rows] == [170, 170, 170, 170, 120, 100]
    totals = await db.fetchrow(
        "SELECT b.used_seconds, b.exhausted_at, "
        "(SELECT sum(seconds_worked) FROM timesheets WHERE project_id = $1) AS sheets "
        "FROM hourly_budgets b WHERE b.project_id = $1",
        project.id,
    )
    assert (totals["used_seconds"], totals["sheets"], totals["exhausted_at"]) == (900, 900, at2)


async def test_one_statement_applies_each_sessions_own_rules(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    capped = await hourly_project(
        tasks_client, workers_client, payments_client, max_hours_per_worker_per_week=0.05
    )  # 180 s a week
    other = await hourly_project(tasks_client, workers_client, payments_client)
    alice, bob, carol = [await create_worker(workers_client) for _ in range(3)]
    with frozen_tasks_clock(apps["tasks"]) as clock:
        alice_capped = await opened(tasks_client, alice, capped.id)
        alice_other = await opened(tasks_client, alice, other.id)
        bob_other = await opened(tasks_client, bob, other.id)
        carol_other = await opened(tasks_client, carol, other.id)
        start = clock.now
    at = start + timedelta(seconds=200)
    out = await _events(
        apps,
        [
            SessionEvent(alice_capped["id"], alice.id, at),  # cut at the weekly cap
            SessionEvent(alice_other["id"], alice.id, at, end=True),  # the worker's end
            SessionEvent(bob_other["id"], carol.id, at),  # someone else's session: nothing
            SessionEvent(carol_other["id"], carol.id, start - timedelta(seconds=5)),  # skewed
            SessionEvent("0" * 20, carol.id, at),  # unknown
        ],
    )
    assert set(out) == {alice_capped["id"], alice_other["id"], carol_other["id"]}
    capped_row, ended_row = out[alice_capped["id"]], out[alice_other["id"]]
    assert (capped_row.granted, capped_row.status, capped_row.ended_reason) == (
        180,
        "ended",
        "weekly_hours_exhausted",
    )
    assert (ended_row.granted, ended_row.status, ended_row.ended_reason) == (200, "ended", "worker")
    assert ended_row.ended_at == at
    # A clock stamp older than the last event counts nothing and moves nothing back.
    skewed = out[carol_other["id"]]
    assert (skewed.granted, skewed.status, skewed.last_activity_at) == (0, "open", start)
    bob_row = await db.fetchrow(
        "SELECT seconds_worked, activity_events FROM work_sessions WHERE id = $1", bob_other["id"]
    )
    assert tuple(bob_row) == (0, 1)  # its opening, nothing since
    # An ended session takes no more events, in a batch as alone.
    again = await _events(apps, [SessionEvent(alice_other["id"], alice.id, at)])
    assert again == {}


async def test_concurrent_heartbeats_of_many_sessions_share_statements_and_count_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    crowd = await asyncio.gather(*(create_worker(workers_client) for _ in range(24)))
    events = apps["tasks"].state.session_events
    with frozen_tasks_clock(apps["tasks"]) as clock:
        sessions = [await opened(tasks_client, w, project.id) for w in crowd]
        batches_before, events_before = events.batches, events.events
        for _ in range(3):
            clock.advance(10)
            responses = await asyncio.gather(
                *(
                    heartbeat(tasks_client, w, s["id"])
                    for w, s in zip(crowd, sessions, strict=True)
                    for _ in range(2)  # each session twice at once: counted once
                )
            )
            assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert events.events - events_before == 3 * 48
    assert events.batches - batches_before < 3 * 48  # they shared statements
    totals = await db.fetchrow(
        "SELECT b.used_seconds, "
        "(SELECT sum(seconds_worked) FROM timesheets WHERE project_id = $1) AS sheets, "
        "(SELECT sum(seconds_worked) FROM work_sessions WHERE project_id = $1) AS sessions, "
        "(SELECT sum(activity_events) FROM work_sessions WHERE project_id = $1) AS beats "
        "FROM hourly_budgets b WHERE b.project_id = $1",
        project.id,
    )
    assert tuple(totals) == (24 * 30, 24 * 30, 24 * 30, 24 + 3 * 48)  # the opens, the beats


async def test_the_activity_statements_probe_by_key_on_generic_plans(apps: dict) -> None:
    """On the hot pool (generic plans, no sequential scans: shared.database) both activity
    statements reach sessions, timesheets and budget rows by key, whatever the batch's size
    (a generic plan cannot know it)."""
    statements = (
        ("events", SESSION_EVENTS_SQL, "text[], text[], timestamptz[], boolean[]"),
        ("by_project", ACTIVITY_BY_PROJECT_SQL, "text, text, timestamptz"),
    )
    plan_of: dict[str, str] = {}
    async with apps["tasks"].state.database.autocommit(hot=True) as conn:
        for name, sql, types in statements:
            await conn.execute(f"PREPARE probe_{name} ({types}) AS {sql}")
            try:
                nulls = ", ".join(["NULL"] * (types.count(",") + 1))
                plan = plan_of[name] = "\n".join(
                    r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE probe_{name} ({nulls})")
                )
            finally:
                await conn.execute(f"DEALLOCATE probe_{name}")
            assert "Seq Scan" not in plan, (name, plan)
            for index in ("timesheets", "hourly_budgets"):
                assert f"Index Scan using pk_{index} on {index}" in plan, (name, plan)
    # The events' sessions by primary key, never a walk of the open ones to join them.
    events_plan = plan_of["events"]
    assert "on pk_work_sessions" in events_plan, events_plan
    assert "Index Cond: ((id)::text = ANY ($1))" in events_plan, events_plan
    assert "Index Scan using pk_projects on projects p" in events_plan, events_plan
    assert "uq_work_sessions_open" not in events_plan, events_plan
    assert "ix_projects_published" not in events_plan, events_plan
    assert "uq_work_sessions_open on work_sessions s" in plan_of["by_project"]
