"""Pay tiers of hourly projects: the rate is fixed when a work session opens (the worker's level
then), the budget reservation holds the highest tier, and a timesheet pays each session's
seconds at that session's rate, once."""

from __future__ import annotations

import asyncio

import httpx

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.hourly import (
    approve_timesheet,
    close_project,
    end,
    frozen_tasks_clock,
    heartbeat,
    hourly_project,
    opened,
    timesheets_of,
)
from tests.fixtures.tasks import assert_ledger_ok, balance, deposit, held, wait_delivered
from tests.services.tasks.pay_tiers.test_pay_tiers import set_level


async def test_each_session_is_paid_at_the_rate_it_opened_with(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    requester = await create_requester(workers_client)
    # The fixture deposits the base rate's reservation (3 h x 18.00 + 20%); the highest tier
    # needs 3 h x 6.00 more, + 20%.
    await deposit(payments_client, requester, "21.60")
    project = await hourly_project(
        tasks_client,
        workers_client,
        payments_client,
        requester=requester,
        hourly_rate="18.00",
        budget_hours=3,
        hourly_rate_by_level={"2": "20.00", "3": "24.00"},
    )
    assert project.project["hourly_rate_by_level"] == {"2": "20.00", "3": "24.00"}
    assert project.project["money"]["reserved"] == "86.40"  # 72.00 + 14.40
    worker = await create_worker(workers_client)
    listed = await tasks_client.get("/v1/work/projects", headers=worker.headers)
    [item] = [p for p in listed.json()["items"] if p["id"] == project.id]
    assert item["hourly_rate_for_your_level"] == "18.00" and item["reward_for_your_level"] is None
    with frozen_tasks_clock(apps["tasks"]) as clock:
        first = await opened(tasks_client, worker, project.id)
        assert first["hourly_rate"] == "18.00"
        for gap in [300, 300, 300, 300, 1]:  # 1201 s at 18.00
            clock.advance(gap)
            assert (await heartbeat(tasks_client, worker, first["id"])).status_code == 200
        assert (await end(tasks_client, worker, first["id"])).status_code == 200
        await set_level(db, worker, 3)
        second = await opened(tasks_client, worker, project.id)
        assert second["hourly_rate"] == "24.00"
        clock.advance(300)
        assert (await heartbeat(tasks_client, worker, second["id"])).status_code == 200
        # A level change mid-session does not change the session's rate.
        await set_level(db, worker, 0)
        for gap in [300, 7]:  # 607 s at 24.00
            clock.advance(gap)
            assert (await heartbeat(tasks_client, worker, second["id"])).status_code == 200
        resp = await end(tasks_client, worker, second["id"])
        assert resp.status_code == 200 and resp.json()["hourly_rate"] == "24.00", resp.text
        [sheet] = await timesheets_of(tasks_client, requester, project.id)
        # (1201 x 18.00 + 607 x 24.00) / 3600 = 10.0517: rounded down once, to 10.05 (per
        # session it would be 6.00 + 4.04).
        assert (sheet["seconds_worked"], sheet["amount_due"]) == (1808, "10.05")
        await close_project(tasks_client, requester, project.id)
        responses = await asyncio.gather(
            *(approve_timesheet(tasks_client, requester, project.id, sheet["id"]) for _ in range(3))
        )
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    body = responses[0].json()
    assert (body["paid"], body["fee"], body["paid_seconds"]) == ("10.05", "2.01", 1808)
    assert [s["hourly_rate"] for s in body["work_sessions"]] == ["18.00", "24.00"]
    await wait_delivered(db, [f"pay:timesheet:{sheet['id']}", f"release:hourly:{project.id}"], apps)
    assert (await balance(payments_client, worker))["available"] == 1005
    assert await held(db, project.id) == 0
    assert (await balance(payments_client, requester))["available"] == 8640 - 1005 - 201
    await assert_ledger_ok(payments_client)
