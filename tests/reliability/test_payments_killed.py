"""Payments dies (SIGKILL) in the middle of a burst of approvals: nothing is lost or paid twice.

Approvals commit with their payout in the tasks database (the outbox), so the requester's 200
never depends on payments being up; the deliverer retries with backoff until payments is back and
acknowledges, and payments acts once per `pay:{assignment_id}` key.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.fixtures.tasks import approve, balance
from tests.reliability.helpers import (
    assert_nothing_half_changed,
    ledger_check,
    outbox_stats,
    submitted_work,
    wait_for,
)

APPROVALS = 200
KILL_AFTER = 40  # responses: payments dies while most of the burst is still to come


async def test_payments_sigkilled_mid_burst_pays_every_approval_exactly_once(
    fault_database: str, make_stack, clients_for
) -> None:
    stack = make_stack(fault_database)
    stack.start_all("tasks", "workers", "payments")
    api = clients_for(stack)
    project, crowd, ids = await submitted_work(
        api.tasks, api.workers, api.payments, n_workers=10, per_worker=APPROVALS // 10
    )
    reward = 10

    answered = 0
    killed = asyncio.Event()
    answered_after_kill = 0

    async def approve_one(assignment_id: str) -> httpx.Response:
        nonlocal answered, answered_after_kill
        resp = await approve(api.tasks, project.requester, assignment_id)
        answered += 1
        answered_after_kill += killed.is_set()
        return resp

    async def kill_payments() -> None:
        while answered < KILL_AFTER:
            await asyncio.sleep(0.001)
        await asyncio.to_thread(stack.stop, "payments", kill=True)
        killed.set()

    responses, _ = await asyncio.gather(
        asyncio.gather(*(approve_one(i) for i in ids)), kill_payments()
    )
    assert [r.status_code for r in responses] == [200] * APPROVALS, [
        r.text for r in responses if r.status_code != 200
    ][:3]
    assert all(r.json()["status"] == "approved" for r in responses)
    assert answered_after_kill > 0, "payments was killed after the burst, not during it"
    assert stack.exit_codes["payments"] == -9

    # While payments is down the payouts wait in the outbox.
    stats = await outbox_stats(api.tasks)
    assert stats["pending"] > 0 and stats["parked"] == 0, stats

    stack.start("payments")
    stack.wait_healthy("payments")

    async def settled() -> bool:
        stats = await outbox_stats(api.tasks)
        return stats["pending"] == 0 and stats["parked"] == 0

    took = await wait_for(
        settled, within=30, what="every payout delivered after payments came back"
    )
    print(
        f"\n{answered_after_kill} approvals answered after the kill;"
        f" outbox settled {took:.1f}s after the restart"
    )
    report = await ledger_check(api.payments)
    assert report["ok"], report

    conn = await asyncpg.connect(fault_database)
    try:
        per_assignment = await conn.fetch(
            "SELECT assignment_id, count(*) AS n FROM ledger_transactions"
            " WHERE kind = 'payout' AND project_id = $1 GROUP BY assignment_id",
            project.id,
        )
        assert sorted(r["assignment_id"] for r in per_assignment) == sorted(ids)
        assert {r["n"] for r in per_assignment} == {1}
        await assert_nothing_half_changed(conn)
    finally:
        await conn.close()
    for worker in crowd:
        money = await balance(api.payments, worker)
        assert money["available"] == (APPROVALS // len(crowd)) * reward, money
    requester = await balance(api.payments, project.requester)
    assert requester["reserved"] == 0 and requester["spent"] == APPROVALS * project.slot_cents
