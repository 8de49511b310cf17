"""The pay floor of per-answer projects: the worst case reserved at publish, the median top-up
settled weekly and at close, the unused reserve released, every cent moved exactly once.

Reward 0.10 (fee 0.02), assignment duration 600 s, floor 6.00/h: the worst case is 600 s at
6.00/h = 1.00, a top-up of 0.90 plus its 0.18 bonus fee, 1.08 per slot on top of the slot's 0.12.
Measured times are set on the answers' rows after the real accept/submit/approve; settlements are
driven by calling the sweep (the session's own timers may run it too: assertions are about what
the database and the ledger hold, which is the same whoever ran it).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx

from services.tasks.pay_floor import service as pay_floor
from services.tasks.timers.service import TimerRunner
from tests.fixtures.accounts import Actor, create_requester
from tests.fixtures.tasks import (
    INTERNAL,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    held,
    published_project,
    submitted,
    wait_delivered,
    workers,
)

FLOOR = {"reward": "0.10", "assignment_duration_seconds": 600, "min_hourly_rate": "6.00"}
SLOT = 12  # reward + fee
WORST = 108  # top-up 90 + fee 18


async def floor_project(tasks_client, workers_client, payments_client, *, tasks: int, **extra):
    return await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(tasks),
        extra_funds_cents=tasks * WORST,
        **{**FLOOR, **extra},
    )


async def approved_answers(
    tasks_client: httpx.AsyncClient,
    db: asyncpg.Pool,
    project,
    crowd: list[Actor],
    seconds: list[float],
) -> list[dict]:
    """One approved answer per worker, each with the measured time given (accept to submit)."""
    done = []
    for worker, measured in zip(crowd, seconds, strict=True):
        work = await submitted(tasks_client, worker, project.id)
        resp = await approve(tasks_client, project.requester, work["id"])
        assert resp.status_code == 200, resp.text
        await db.execute(
            "UPDATE assignments SET accepted_at = submitted_at - make_interval(secs => $2) "
            "WHERE id = $1",
            work["id"],
            measured,
        )
        done.append(work)
    return done


async def settle(apps: dict, *, grace: float = 0.0) -> int:
    """One pass of the settlement sweep, in its own transaction (as the timer runs it)."""
    async with apps["tasks"].state.database.transaction() as db:
        return await pay_floor.settle_due(db, limit=100, grace_seconds=grace, recheck_seconds=60)


async def make_due(db: asyncpg.Pool, project_id: str) -> None:
    await db.execute(
        "UPDATE pay_floors SET next_settlement_at = now() WHERE project_id = $1", project_id
    )


async def last_week(db: asyncpg.Pool, ids: list[str]) -> None:
    """These answers were approved a week ago (their period is over)."""
    await db.execute(
        "UPDATE assignments SET reviewed_at = reviewed_at - interval '7 days', "
        "submitted_at = submitted_at - interval '7 days', "
        "accepted_at = accepted_at - interval '7 days' WHERE id = ANY($1)",
        ids,
    )


async def delivered_for(db: asyncpg.Pool, apps: dict, project_id: str) -> list[str]:
    keys = [
        r["key"]
        for r in await db.fetch(
            "SELECT key FROM outbox WHERE payload->>'project_id' = $1", project_id
        )
    ]
    await wait_delivered(db, keys, apps)
    return keys


async def top_ups(db: asyncpg.Pool, project_id: str) -> dict[str, int]:
    """Pay floor bonuses in the ledger, per assignment (cents to the worker)."""
    rows = await db.fetch(
        "SELECT assignment_id, amount_cents FROM ledger_transactions "
        "WHERE kind = 'bonus' AND project_id = $1 AND details->>'reason' = 'pay_floor'",
        project_id,
    )
    assert len(rows) == len({r["assignment_id"] for r in rows}), "an answer topped up twice"
    return {r["assignment_id"]: r["amount_cents"] for r in rows}


def test_worst_case_and_top_up_arithmetic() -> None:
    worst = pay_floor.worst_case(min_hourly_rate_cents=600, reward_cents=10, duration_seconds=600)
    assert (worst.top_up_cents, worst.fee_cents) == (90, 18)
    # 95 s at 6.00/h is 15.83 cents -> 16, minus the reward 10
    assert (
        pay_floor.top_up_cents(min_hourly_rate_cents=600, reward_cents=10, seconds=Decimal(95)) == 6
    )
    # half a cent rounds up: 3 s at 6.00/h = 0.5 cent
    assert pay_floor.floor_pay_cents(600, Decimal(3)) == 1
    assert (
        pay_floor.top_up_cents(min_hourly_rate_cents=600, reward_cents=10, seconds=Decimal(60)) == 0
    )
    no_room = pay_floor.worst_case(min_hourly_rate_cents=60, reward_cents=10, duration_seconds=600)
    assert (no_room.top_up_cents, no_room.fee_cents) == (0, 0)


async def test_publish_reserves_the_worst_case_and_bad_floors_are_refused(
    tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=4)
    assert project.project["min_hourly_rate"] == "6.00"
    assert project.project["money"]["reserved"] == "4.80"  # the publish answer counts it too
    assert await held(db, project.id) == 4 * (SLOT + WORST)
    assert (await balance(payments_client, project.requester))["available"] == 0
    floor = await db.fetchrow("SELECT * FROM pay_floors WHERE project_id = $1", project.id)
    assert (floor["worst_top_up_cents"], floor["worst_fee_cents"]) == (90, 18)
    assert floor["reserved_cents"] == 4 * WORST and floor["duration_seconds"] == 600
    shown = (
        await tasks_client.get(f"/v1/projects/{project.id}", headers=project.requester.headers)
    ).json()
    assert shown["money"] == {"reserved": "4.80", "spent": "0.00"}  # 4 x (0.12 + 1.08)

    # Money for the slots but not for the floor's worst case: 402, still a draft.
    from tests.fixtures.tasks import PROJECT_DEFAULTS, deposit

    owner = project.requester
    resp = await tasks_client.post(
        "/v1/projects", json={**PROJECT_DEFAULTS, **FLOOR}, headers=owner.headers
    )
    draft = resp.json()
    await tasks_client.post(
        f"/v1/projects/{draft['id']}/tasks", json={"tasks": cat_tasks(2)}, headers=owner.headers
    )
    await deposit(payments_client, owner, "0.24")
    resp = await tasks_client.post(f"/v1/projects/{draft['id']}/publish", headers=owner.headers)
    assert resp.status_code == 402, resp.text
    assert (
        await db.fetchval("SELECT count(*) FROM pay_floors WHERE project_id = $1", draft["id"]) == 0
    )

    # Uploading to the live project reserves the new slots' worst case too.
    await deposit(payments_client, owner, "2.40")
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/tasks", json={"tasks": cat_tasks(2)}, headers=owner.headers
    )
    assert resp.status_code == 201, resp.text
    assert await held(db, project.id) == 6 * (SLOT + WORST)

    # Bad input: 422 and nothing created; a live floor cannot change.
    for bad in ("0.00", "1000.01", 6, "-1.00"):
        resp = await tasks_client.post(
            "/v1/projects",
            json={**PROJECT_DEFAULTS, "min_hourly_rate": bad},
            headers=owner.headers,
        )
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["errors"][0]["loc"][-1] == "min_hourly_rate"
    resp = await tasks_client.post(
        "/v1/projects",
        json={
            **{k: v for k, v in PROJECT_DEFAULTS.items() if k != "reward"},
            "pay_model": "hourly",
            "hourly_rate": "18.00",
            "budget_hours": 10,
            "max_hours_per_worker_per_week": 5,
            "min_hourly_rate": "6.00",
        },
        headers=owner.headers,
    )
    assert resp.status_code == 422, resp.text
    assert ["body", "min_hourly_rate"] in [e["loc"] for e in resp.json()["errors"]]
    resp = await tasks_client.patch(
        f"/v1/projects/{project.id}", json={"min_hourly_rate": "9.00"}, headers=owner.headers
    )
    assert resp.status_code == 409 and resp.json()["code"] == "invalid_state"
    resp = await tasks_client.patch(
        f"/v1/projects/{draft['id']}", json={"min_hourly_rate": None}, headers=owner.headers
    )
    assert resp.status_code == 200 and resp.json()["min_hourly_rate"] is None
    await assert_ledger_ok(payments_client)


async def test_median_top_up_to_the_cent_a_slow_worker_does_not_raise_it_and_close_releases(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=4)
    crowd = await workers(workers_client, 3)
    # 60 s, 95 s, and one worker who sat on the task for 3,000 s (capped at the duration, 600):
    # the median is 95 s, not the slow worker's time.
    work = await approved_answers(tasks_client, db, project, crowd, [60, 95, 3_000])
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    await settle(apps)
    settlement = await db.fetchrow(
        "SELECT * FROM pay_floor_settlements WHERE project_id = $1", project.id
    )
    assert settlement["median_seconds"] == Decimal("95.000") and settlement["answers"] == 3
    assert (settlement["top_up_cents"], settlement["fee_cents"]) == (6, 1)  # 15.83 -> 16 - 10
    assert settlement["final"] is True
    await delivered_for(db, apps, project.id)
    assert await top_ups(db, project.id) == {w["id"]: 6 for w in work}
    for worker in crowd:
        assert (await balance(payments_client, worker))["available"] == 10 + 6
    # Nothing is held any more: the open slot went back at close, the floor's unused worst case
    # (4 x 1.08 - 3 x 0.07) at the final settlement.
    assert await held(db, project.id) == 0
    requester = await balance(payments_client, project.requester)
    assert requester["available"] == 4 * (SLOT + WORST) - 3 * SLOT - 3 * 7
    floor = await db.fetchrow("SELECT * FROM pay_floors WHERE project_id = $1", project.id)
    assert floor["finished_at"] is not None
    assert (floor["paid_cents"], floor["released_cents"]) == (21, 4 * WORST - 21)
    await assert_ledger_ok(payments_client)


async def test_no_top_up_when_the_reward_already_pays_the_floor(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=3)
    crowd = await workers(workers_client, 3)
    await approved_answers(tasks_client, db, project, crowd, [30, 59, 900])  # median 59 s: 9.8 c
    await tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    # This time through the timers, as every tasks process runs them.
    runner = TimerRunner(
        database=apps["tasks"].state.database,
        batch_size=100,
        poll_interval_seconds=0.05,
        grace_seconds=0.0,
        retention_seconds=86_400,
        error_backoff_seconds=0.05,
        error_backoff_cap_seconds=0.5,
        stop_timeout_seconds=5.0,
        pay_floor_grace_seconds=0.0,
    )
    await runner.drain("pay_floor_settlements")
    settlement = await db.fetchrow(
        "SELECT * FROM pay_floor_settlements WHERE project_id = $1", project.id
    )
    assert settlement["top_up_cents"] == 0 and settlement["paid_cents"] == 0
    await delivered_for(db, apps, project.id)
    assert await top_ups(db, project.id) == {}
    assert await held(db, project.id) == 0
    assert (await balance(payments_client, project.requester))["available"] == 3 * WORST
    await assert_ledger_ok(payments_client)


async def test_weekly_settlement_of_a_live_project_settles_past_weeks_once(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=6)
    crowd = await workers(workers_client, 5)
    old = await approved_answers(tasks_client, db, project, crowd[:3], [120, 150, 180])
    await last_week(db, [w["id"] for w in old])
    recent = await approved_answers(tasks_client, db, project, crowd[3:], [300, 300])
    await make_due(db, project.id)
    # Many replicas at once: the floor row is claimed by one, the period is settled once.
    await asyncio.gather(*(settle(apps) for _ in range(4)))
    await make_due(db, project.id)
    await settle(apps)
    rows = await db.fetch("SELECT * FROM pay_floor_settlements WHERE project_id = $1", project.id)
    assert len(rows) == 1
    # last week's median 150 s = 25 cents at 6.00/h: a top-up of 15 (+ 3 fee) each
    assert (rows[0]["top_up_cents"], rows[0]["fee_cents"], rows[0]["final"]) == (15, 3, False)
    floor = await db.fetchrow("SELECT * FROM pay_floors WHERE project_id = $1", project.id)
    assert floor["finished_at"] is None and floor["next_settlement_at"] > rows[0]["settled_at"]
    await delivered_for(db, apps, project.id)
    assert await top_ups(db, project.id) == {w["id"]: 15 for w in old}
    await assert_ledger_ok(payments_client)  # between settlements too
    resp = await tasks_client.get(
        f"/v1/projects/{project.id}/pay-floor", headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    shown = resp.json()
    assert (shown["reserved"], shown["paid"], shown["released"], shown["held"]) == (
        "6.48",
        "0.54",
        "2.70",
        "3.24",
    )
    assert (shown["worst_case_top_up"], shown["worst_case_fee"]) == ("0.90", "0.18")
    [period] = shown["settlements"]
    assert (period["answers"], period["median_seconds"], period["top_up"], period["fee"]) == (
        3,
        150.0,
        "0.15",
        "0.03",
    )
    assert period["final"] is False and shown["finished_at"] is None
    # Someone else's project, or one without a floor: 404, like a missing one.
    stranger = await create_requester(workers_client)
    for who, pid in ((stranger, project.id), (project.requester, "NOPE")):
        resp = await tasks_client.get(f"/v1/projects/{pid}/pay-floor", headers=who.headers)
        assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    # Still held: this week's 2 unsettled answers and the 1 open slot keep their worst case,
    # the open slot its reward + fee; the 3 settled answers' unused worst case went back.
    assert await held(db, project.id) == 3 * WORST + SLOT
    assert floor["paid_cents"] == 54 and floor["released_cents"] == 3 * WORST - 54
    assert {
        r["assignment_id"]
        for r in await db.fetch(
            "SELECT assignment_id FROM pay_floor_answers WHERE project_id = $1", project.id
        )
    } == {w["id"] for w in old}
    # A replica that read last week's answers as unsettled just before another committed their
    # settlement (simulated: their rows gone) meets the period's unique key and pays nothing.
    await db.execute(
        "DELETE FROM pay_floor_answers WHERE assignment_id = ANY($1::text[])",
        [w["id"] for w in old],
    )
    outbox_before = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE payload->>'project_id' = $1", project.id
    )
    await make_due(db, project.id)
    await settle(apps)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE payload->>'project_id' = $1", project.id
        )
        == outbox_before
    )
    again = await db.fetchrow("SELECT * FROM pay_floors WHERE project_id = $1", project.id)
    assert (again["paid_cents"], again["released_cents"]) == (54, 3 * WORST - 54)
    # Closing settles this week's answers at once (median 300 s = 50 c: top-up 40 + 8).
    await tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    await settle(apps)
    await delivered_for(db, apps, project.id)
    assert await top_ups(db, project.id) == {
        **{w["id"]: 15 for w in old},
        **{w["id"]: 40 for w in recent},
    }
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_a_settlement_racing_itself_and_a_replayed_top_up_pay_once(
    apps, tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=3)
    crowd = await workers(workers_client, 3)
    work = await approved_answers(tasks_client, db, project, crowd, [200, 200, 200])
    await tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    await asyncio.gather(*(settle(apps) for _ in range(6)))
    keys = await delivered_for(db, apps, project.id)
    assert sorted(k for k in keys if k.startswith("topup:")) == sorted(
        f"topup:{w['id']}" for w in work
    )
    # The same top-up sent again (a deliverer whose acknowledgement was lost): a replay.
    body = await db.fetchval("SELECT payload FROM outbox WHERE key = $1", f"topup:{work[0]['id']}")
    import orjson

    payload = orjson.loads(body) if isinstance(body, str) else body
    resp = await payments_client.post("/internal/top-ups", json=payload, headers=INTERNAL)
    assert resp.status_code == 200 and resp.headers["Idempotent-Replayed"] == "true"
    # ... and with another amount under the same key: refused, nothing moves.
    resp = await payments_client.post(
        "/internal/top-ups", json={**payload, "amount_cents": 999}, headers=INTERNAL
    )
    assert resp.status_code == 409 and resp.json()["code"] == "idempotency_key_reused"
    assert await top_ups(db, project.id) == {w["id"]: 23 for w in work}  # 200 s: 33 c - 10
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)


async def test_payments_down_during_settlement_loses_nothing(
    apps, mesh, tasks_client, workers_client, payments_client, db
) -> None:
    project = await floor_project(tasks_client, workers_client, payments_client, tasks=2)
    crowd = await workers(workers_client, 2)
    work = await approved_answers(tasks_client, db, project, crowd, [400, 400])
    await delivered_for(db, apps, project.id)  # the rewards are paid
    await tasks_client.post(f"/v1/projects/{project.id}/close", headers=project.requester.headers)
    mesh.stop("payments")
    try:
        await settle(apps)
        await apps["tasks"].state.outbox_deliverer.deliver_due()
        pending = await db.fetch(
            "SELECT key, attempts, delivered_at, parked_at FROM outbox WHERE key = ANY($1::text[])",
            [f"topup:{w['id']}" for w in work],
        )
        assert len(pending) == 2
        assert all(r["delivered_at"] is None and r["parked_at"] is None for r in pending)
    finally:
        mesh.start("payments")
    await db.execute(
        "UPDATE outbox SET next_attempt_at = now() WHERE payload->>'project_id' = $1", project.id
    )
    await delivered_for(db, apps, project.id)
    # 400 s at 6.00/h = 66.67 -> 67 c: a top-up of 57 (+ 11 fee), exactly once each
    assert await top_ups(db, project.id) == {w["id"]: 57 for w in work}
    for worker in crowd:
        assert (await balance(payments_client, worker))["available"] == 10 + 57
    assert await held(db, project.id) == 0
    await assert_ledger_ok(payments_client)
