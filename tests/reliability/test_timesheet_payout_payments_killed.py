"""Payments is killed between a timesheet's approval and its payout: nothing is lost or paid
twice. The approval commits with its payout in the outbox, so the requester's 200 never
depends on payments; the deliverer retries until payments is back, which acts once per
`pay:timesheet:{id}`. Real processes, real time (a few seconds of measured work)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.fixtures.accounts import create_worker
from tests.fixtures.hourly import (
    approve_timesheet,
    close_project,
    end,
    heartbeat,
    hourly_project,
    opened,
    timesheets_of,
)
from tests.fixtures.tasks import balance
from tests.reliability.helpers import ledger_check, outbox_stats, wait_for


async def test_payments_killed_between_timesheet_approval_and_payout_loses_nothing(
    fault_database: str, make_stack, clients_for
) -> None:
    stack = make_stack(fault_database)
    stack.start_all("tasks", "workers", "payments")
    api = clients_for(stack)
    # 1000.00 an hour: a second of measured work is 27 cents (rounded down per timesheet).
    project = await hourly_project(
        api.tasks, api.workers, api.payments, hourly_rate="1000.00", budget_hours=1, tasks=1
    )
    worker = await create_worker(api.workers)
    session = await opened(api.tasks, worker, project.id)
    await asyncio.sleep(2.2)
    assert (await heartbeat(api.tasks, worker, session["id"])).status_code == 200
    ended = (await end(api.tasks, worker, session["id"])).json()
    seconds = ended["seconds_worked"]
    assert seconds >= 2
    await close_project(api.tasks, project.requester, project.id)
    [sheet] = await timesheets_of(api.tasks, project.requester, project.id)

    async def release_delivered() -> bool:
        return (await outbox_stats(api.tasks))["pending"] == 0

    await wait_for(release_delivered, within=30, what="the close's release delivered")
    await asyncio.to_thread(stack.stop, "payments", kill=True)
    assert stack.exit_codes["payments"] == -9

    responses = await asyncio.gather(
        *(
            approve_timesheet(api.tasks, project.requester, project.id, sheet["id"])
            for _ in range(3)
        )
    )
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    pay = seconds * 100_000 // 3600
    assert {r.json()["paid"] for r in responses} == {f"{pay // 100}.{pay % 100:02d}"}
    stats = await outbox_stats(api.tasks)
    assert stats["pending"] == 1 and stats["parked"] == 0, stats

    stack.start("payments")
    stack.wait_healthy("payments")
    await wait_for(release_delivered, within=30, what="the timesheet's payout delivered")
    assert (await balance(api.payments, worker))["available"] == pay
    report = await ledger_check(api.payments)
    assert report["ok"], report
    conn = await asyncpg.connect(fault_database)
    try:
        payouts = await conn.fetch(
            "SELECT amount_cents FROM ledger_transactions WHERE kind = 'payout' AND worker_id = $1",
            worker.id,
        )
        assert [r["amount_cents"] for r in payouts] == [pay]
        held = await conn.fetchval(
            "SELECT held_cents FROM project_holds WHERE project_id = $1", project.id
        )
        assert held == 0
    finally:
        await conn.close()
