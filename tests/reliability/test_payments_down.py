"""What each call from tasks to payments does while payments is down (README: "When a service
or Postgres is down").

- Synchronous calls, where the requester must know the money moved before the answer: publish
  and uploads to a live project (reservations), overriding a rejection (a payout from the
  available balance). They answer 503 `dependency_unavailable` with `Retry-After` and change
  nothing; the same call succeeds once payments is back.
- Everything else that moves money goes through the outbox and succeeds at once: approve (one,
  bulk, auto-approval), reject, return, close, expiry. Payments gets the messages when it is
  back, each acted on once.
"""

from __future__ import annotations

import asyncpg

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import (
    PROJECT_DEFAULTS,
    accepted,
    approve,
    balance,
    cat_tasks,
    deposit,
    reject,
)
from tests.reliability.helpers import (
    assert_nothing_half_changed,
    ledger_check,
    outbox_stats,
    submitted_work,
    wait_for,
)


async def test_payments_down_sync_calls_answer_503_and_outbox_calls_succeed(
    fault_database: str, make_stack, clients_for
) -> None:
    stack = make_stack(fault_database)
    stack.start_all("tasks", "workers", "payments")
    api = clients_for(stack)
    project, crowd, ids = await submitted_work(
        api.tasks, api.workers, api.payments, n_workers=2, per_worker=3, extra_funds_cents=500
    )
    owner = project.requester
    assert (await reject(api.tasks, owner, ids[0])).status_code == 200
    holder = await create_worker(api.workers)
    live = await accepted(api.tasks, holder, project.id)

    draft_owner = await create_requester(api.workers)
    resp = await api.tasks.post("/v1/projects", json=PROJECT_DEFAULTS, headers=draft_owner.headers)
    draft = resp.json()
    resp = await api.tasks.post(
        f"/v1/projects/{draft['id']}/tasks",
        json={"tasks": cat_tasks(2)},
        headers=draft_owner.headers,
    )
    assert resp.status_code == 201, resp.text
    await deposit(api.payments, draft_owner, "10.00")

    stack.stop("payments")

    def unavailable(resp) -> None:
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "dependency_unavailable"
        assert int(resp.headers["Retry-After"]) > 0

    conn = await asyncpg.connect(fault_database)
    try:
        before = await conn.fetchval("SELECT count(*) FROM outbox")

        # Synchronous: refused, nothing changes.
        unavailable(
            await api.tasks.post(f"/v1/projects/{draft['id']}/publish", headers=draft_owner.headers)
        )
        assert (
            await conn.fetchval("SELECT status FROM projects WHERE id = $1", draft["id"]) == "draft"
        )
        tasks_before = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE project_id = $1", project.id
        )
        unavailable(
            await api.tasks.post(
                f"/v1/projects/{project.id}/tasks",
                json={"tasks": cat_tasks(3)},
                headers=owner.headers,
            )
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project.id)
            == tasks_before
        )
        unavailable(await approve(api.tasks, owner, ids[0], feedback="On second look, fine."))
        assert await conn.fetchval("SELECT status FROM assignments WHERE id = $1", ids[0]) == (
            "rejected"
        )
        assert await conn.fetchval("SELECT count(*) FROM outbox") == before

        # Through the outbox: succeed now.
        assert (await approve(api.tasks, owner, ids[1])).status_code == 200
        resp = await api.tasks.post(
            "/v1/assignments/review",
            json={
                "approve": [{"id": ids[2]}],
                "reject": [{"id": ids[3], "feedback": "Not what the guidelines ask for."}],
            },
            headers=owner.headers,
        )
        assert resp.status_code == 200, resp.text
        assert [r["status"] for r in resp.json()["results"]] == ["ok", "ok"]
        resp = await api.tasks.post(
            f"/v1/assignments/{live['assignment_id']}/return", headers=holder.headers
        )
        assert resp.status_code == 200, resp.text
        resp = await api.tasks.post(f"/v1/projects/{project.id}/close", headers=owner.headers)
        assert resp.status_code == 200, resp.text
        stats = await outbox_stats(api.tasks)
        assert stats["pending"] >= 3 and stats["parked"] == 0, stats

        stack.start("payments")
        stack.wait_healthy("payments")

        async def settled() -> bool:
            stats = await outbox_stats(api.tasks)
            return stats["pending"] == 0 and stats["parked"] == 0

        await wait_for(settled, within=20, what="outbox delivered once payments is back")

        # The refused calls work now, once.
        resp = await api.tasks.post(
            f"/v1/projects/{draft['id']}/publish", headers=draft_owner.headers
        )
        assert resp.status_code == 200, resp.text
        resp = await approve(api.tasks, owner, ids[0], feedback="On second look, fine.")
        assert resp.status_code == 200, resp.text
        assert (await ledger_check(api.payments))["ok"]
        await wait_for(settled, within=20, what="outbox delivered")
        await assert_nothing_half_changed(conn)
    finally:
        await conn.close()
    # Paid: ids[0] (override), ids[1], ids[2]; ids[3] rejected; ids[4], ids[5] still submitted.
    earned = sum([(await balance(api.payments, w))["available"] for w in crowd])
    assert earned == 3 * 10
    money = await balance(api.payments, owner)
    # Reserved: the two submitted slots still held by the closed project.
    assert money["reserved"] == 2 * project.slot_cents, money
