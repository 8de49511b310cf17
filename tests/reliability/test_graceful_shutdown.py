"""SIGTERM to a tasks process during a burst: in-flight requests finish, nothing is half-done,
and the restarted process picks up where it stopped (a restart loses nothing).

uvicorn stops accepting connections on SIGTERM, lets the requests it is serving finish, then
runs the lifespan's shutdown: the timers finish their batch and the outbox deliverer its pass.
A request is either answered correctly or not answered at all (refused connection, or a
keep-alive connection closed before the request was read) and then it changed nothing.
"""

from __future__ import annotations

import asyncio
import signal

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

APPROVALS = 150
SIGTERM_AFTER = 30


async def test_sigterm_during_a_burst_drains_requests_and_loses_nothing(
    fault_database: str, make_stack, clients_for
) -> None:
    stack = make_stack(fault_database)
    stack.start_all("tasks", "workers", "payments")
    api = clients_for(stack)
    project, crowd, ids = await submitted_work(
        api.tasks,
        api.workers,
        api.payments,
        n_workers=10,
        per_worker=APPROVALS // 10,
    )
    answered = 0
    proc = stack.procs["tasks"]

    async def approve_one(assignment_id: str) -> httpx.Response | None:
        nonlocal answered
        try:
            resp = await approve(api.tasks, project.requester, assignment_id)
        except httpx.HTTPError:
            return None  # never answered
        answered += 1
        return resp

    async def terminate() -> None:
        while answered < SIGTERM_AFTER:
            await asyncio.sleep(0.001)
        proc.send_signal(signal.SIGTERM)

    responses, _ = await asyncio.gather(asyncio.gather(*(approve_one(i) for i in ids)), terminate())
    code = await asyncio.to_thread(proc.wait, 30)
    log = stack.log("tasks")
    # uvicorn re-raises the signal once shut down: -SIGTERM is its clean exit.
    assert code in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete." in log, log[-3000:]
    assert "Traceback" not in log and '"level":"ERROR"' not in log, log[-3000:]

    got = {i: r for i, r in zip(ids, responses, strict=True) if r is not None}
    print(f"\n{len(got)} of {APPROVALS} approvals answered before the process exited")
    assert SIGTERM_AFTER <= len(got)
    for assignment_id, resp in got.items():
        assert resp.status_code == 200, resp.text  # answered means answered correctly
        assert resp.json()["id"] == assignment_id and resp.json()["status"] == "approved"

    conn = await asyncpg.connect(fault_database)
    try:
        status = dict(
            await conn.fetch("SELECT id, status FROM assignments WHERE id = ANY($1)", ids)
        )
        assert all(status[i] == "approved" for i in got)
        assert set(status.values()) <= {"approved", "submitted"}
        pays = {r["key"] for r in await conn.fetch("SELECT key FROM outbox WHERE kind = 'payout'")}
        # Approved exactly when its payout was enqueued: the two commit together.
        assert {f"pay:{i}" for i in ids if status[i] == "approved"} == pays

        # Restarted, the service serves again and finishes what was left.
        stack.procs.pop("tasks")
        stack.start("tasks")
        stack.wait_healthy("tasks")
        for assignment_id in ids:
            if assignment_id not in got:
                resp = await approve(api.tasks, project.requester, assignment_id)
                assert resp.status_code == 200, resp.text

        async def settled() -> bool:
            stats = await outbox_stats(api.tasks)
            return stats["pending"] == 0 and stats["parked"] == 0

        await wait_for(settled, within=20, what="outbox delivered after the restart")
        assert (await ledger_check(api.payments))["ok"]
        await assert_nothing_half_changed(conn)
    finally:
        await conn.close()
    for worker in crowd:
        assert (await balance(api.payments, worker))["available"] == (APPROVALS // 10) * 10
