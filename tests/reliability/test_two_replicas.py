"""Two tasks processes run the timers on one database: every due item is acted on exactly once.

Each replica counts what its sweeps acted on (`GET /internal/timers/stats`); with nobody else on
this database, the two counts must add up to exactly the number of due items, whatever the split,
and the database and the ledger must show each action once.
"""

from __future__ import annotations

import asyncpg

from tests.fixtures.tasks import accepted, cat_tasks, published_project, workers
from tests.reliability.conftest import INTERNAL
from tests.reliability.helpers import (
    assert_nothing_half_changed,
    ledger_check,
    outbox_stats,
    submitted_work,
    wait_for,
)

REPLICAS = ("tasks", "tasks-2")
TIMER_ENV = {
    "TASKS_TIMERS_GRACE_SECONDS": "0",
    "TASKS_TIMERS_POLL_INTERVAL_SECONDS": "0.05",
    "TASKS_TIMERS_BATCH_SIZE": "5",  # many small batches: the replicas interleave
}


async def test_two_replicas_act_on_each_due_item_exactly_once(
    fault_database: str, make_stack, clients_for
) -> None:
    stack = make_stack(fault_database, TIMER_ENV)
    stack.add_replica("tasks-2")
    stack.start_all(*REPLICAS, "workers", "payments")
    api = clients_for(stack)

    # Due soon: 120 submitted (auto-approval), 40 accepted (deadline), 30 tasks (lifetime).
    approving, _approvers, approve_ids = await submitted_work(
        api.tasks, api.workers, api.payments, n_workers=8, per_worker=15
    )
    lapsing = await published_project(api.tasks, api.workers, api.payments, tasks=cat_tasks(40))
    holders = await workers(api.workers, 8)
    deadline_ids = [
        (await accepted(api.tasks, w, lapsing.id))["assignment_id"]
        for w in holders
        for _ in range(5)
    ]
    ageing = await published_project(
        api.tasks, api.workers, api.payments, tasks=cat_tasks(30), assignments_per_task=2
    )

    conn = await asyncpg.connect(fault_database)
    try:
        async with conn.transaction():  # everything falls due at the same instant
            await conn.execute(
                "UPDATE assignments SET auto_approve_at = now() WHERE id = ANY($1)", approve_ids
            )
            await conn.execute(
                "UPDATE assignments SET deadline = now() WHERE id = ANY($1)", deadline_ids
            )
            await conn.execute(
                "UPDATE tasks SET expires_at = now() WHERE project_id = $1", ageing.id
            )

        replicas = {name: stack.client(name) for name in REPLICAS}

        async def stats() -> dict[str, dict]:
            out = {}
            for name, client in replicas.items():
                resp = await client.get("/internal/timers/stats", headers=INTERNAL)
                assert resp.status_code == 200, resp.text
                out[name] = resp.json()
            return out

        async def all_done() -> bool:
            now = await stats()
            return (
                all(s["due_now"] == 0 for r in now.values() for s in r["sweeps"].values())
                and (await outbox_stats(api.tasks))["pending"] == 0
            )

        await wait_for(all_done, within=30, what="timers and outbox caught up")
        final = await stats()
        for client in replicas.values():
            await client.aclose()

        assert len({r["replica"] for r in final.values()}) == 2  # two processes answered
        acted = {
            sweep: {name: final[name]["sweeps"][sweep]["acted"] for name in REPLICAS}
            for sweep in ("auto_approvals", "assignment_deadlines", "task_lifetimes")
        }
        print(f"\nacted per replica: {acted}")
        assert sum(acted["auto_approvals"].values()) == 120, acted
        assert sum(acted["assignment_deadlines"].values()) == 40, acted
        assert sum(acted["task_lifetimes"].values()) == 30, acted
        per_replica = {n: sum(a[n] for a in acted.values()) for n in REPLICAS}
        assert all(per_replica.values()), f"one replica did all the work: {per_replica}"
        assert all(final[n]["sweeps"][s]["failures"] == 0 for n in REPLICAS for s in acted)

        statuses = dict(
            await conn.fetch(
                "SELECT status, count(*) FROM assignments WHERE project_id = ANY($1)"
                " GROUP BY status",
                [approving.id, lapsing.id],
            )
        )
        assert statuses == {"approved": 120, "expired": 40}
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE project_id = $1 AND status = 'expired'", ageing.id
            )
            == 30
        )
        await assert_nothing_half_changed(conn)
        holds = dict(
            await conn.fetch(
                "SELECT project_id, held_cents FROM project_holds WHERE project_id = ANY($1)",
                [approving.id, lapsing.id, ageing.id],
            )
        )
        # Paid out; reopened with the money kept; released, each slot's money exactly once.
        assert holds == {approving.id: 0, lapsing.id: 40 * lapsing.slot_cents, ageing.id: 0}
        outbox = await outbox_stats(api.tasks)
        assert outbox["parked"] == 0, outbox
        report = await ledger_check(api.payments)
        assert report["ok"], report
    finally:
        await conn.close()
