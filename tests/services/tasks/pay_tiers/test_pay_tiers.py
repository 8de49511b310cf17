"""Pay tiers (services/tasks/pay_tiers): a per-answer project's reward by worker level, fixed at
accept; publishing holds the highest tier, approval pays the assignment's tier and releases the
rest of its slot; the ledger check holds throughout. Real Postgres, real HTTP, real races."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx

from services.tasks.lifecycle import accept as accepting
from services.tasks.timers.service import TimerRunner
from shared.fees import fee_cents
from shared.ids import new_id
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.tasks import (
    PROJECT_DEFAULTS,
    accept,
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    deposit,
    held,
    published_project,
    reject,
    submit,
    wait_delivered,
    workers,
)

TIERS = {"2": "0.12", "3": "0.15"}
# Level 0 and 1 earn the base 0.10, level 2 0.12, level 3 0.15; fees by the 20% rule.
REWARD_OF_LEVEL = {0: 10, 1: 10, 2: 12, 3: 15}
SLOT_CENTS = 15 + fee_cents(15)  # what publishing holds per slot: the highest tier + its fee


def pay_of(level: int) -> int:
    reward = REWARD_OF_LEVEL[level]
    return reward + fee_cents(reward)


async def set_level(db: asyncpg.Pool, worker: Actor, level: int) -> None:
    """The worker's platform level as the ladder keeps it (worker_levels, services/workers/
    levels); the climb itself is tested there."""
    await db.execute(
        "INSERT INTO worker_levels (worker_id, level) VALUES ($1, $2) "
        "ON CONFLICT (worker_id) DO UPDATE SET level = EXCLUDED.level, since = now()",
        worker.id,
        level,
    )


async def tiered_project(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    n_tasks: int,
    **overrides: Any,
):
    """A published tiered project, funded exactly for its highest-tier slots."""
    base_slot = 10 + fee_cents(10)
    return await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(n_tasks),
        reward_by_level=TIERS,
        extra_funds_cents=n_tasks * (SLOT_CENTS - base_slot),
        **overrides,
    )


async def hold_of(db: asyncpg.Pool, project_id: str) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT held_cents, reserved_total_cents, released_total_cents, spent_cents "
        "FROM project_holds WHERE project_id = $1",
        project_id,
    )


async def payout_of(db: asyncpg.Pool, assignment_id: str) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT amount_cents, fee_cents FROM ledger_transactions "
        "WHERE kind = 'payout' AND assignment_id = $1",
        assignment_id,
    )
    return row["amount_cents"], row["fee_cents"]


# ------------------------------------------------------------------------------ bad input


async def _create(
    tasks_client: httpx.AsyncClient, requester: Actor, **overrides: Any
) -> httpx.Response:
    return await tasks_client.post(
        "/v1/projects", json={**PROJECT_DEFAULTS, **overrides}, headers=requester.headers
    )


async def test_tiers_that_break_the_rules_are_a_422_naming_the_field(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    before = await db.fetchval(
        "SELECT count(*) FROM projects WHERE requester_id = $1", requester.id
    )
    cases = {
        "lower than the base reward": {"2": "0.09"},
        "decreasing with the level": {"2": "0.15", "3": "0.12"},
        "an unknown level": {"4": "0.20"},
        "level 0 (that is the base reward)": {"0": "0.20"},
        "not money": {"2": 0.12},
        "empty": {},
    }
    for what, tiers in cases.items():
        resp = await _create(tasks_client, requester, reward_by_level=tiers)
        assert resp.status_code == 422, (what, resp.text)
        problem = resp.json()
        assert problem["code"] == "validation_error", (what, problem)
        assert any("reward_by_level" in map(str, e["loc"]) for e in problem["errors"]), (
            what,
            problem,
        )
    hourly = {
        "pay_model": "hourly",
        "reward": None,
        "hourly_rate": "12.00",
        "budget_hours": 10,
    }
    resp = await _create(tasks_client, requester, **hourly, reward_by_level={"2": "0.12"})
    assert resp.status_code == 422 and "reward_by_level" in resp.text, resp.text
    resp = await _create(tasks_client, requester, hourly_rate_by_level={"2": "15.00"})
    assert resp.status_code == 422 and "hourly_rate_by_level" in resp.text, resp.text
    resp = await _create(tasks_client, requester, **hourly, hourly_rate_by_level={"3": "11.00"})
    assert resp.status_code == 422 and "hourly_rate_by_level" in resp.text, resp.text
    # Nothing was created by any refusal.
    assert before == await db.fetchval(
        "SELECT count(*) FROM projects WHERE requester_id = $1", requester.id
    )


async def test_tiers_are_shown_and_editable_only_while_a_draft(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, payments_client
) -> None:
    requester = await create_requester(workers_client)
    resp = await _create(tasks_client, requester, reward_by_level={"3": "0.15", "2": "0.12"})
    assert resp.status_code == 201, resp.text
    project = resp.json()
    assert project["reward_by_level"] == {"2": "0.12", "3": "0.15"}
    assert project["reward"] == "0.10"
    url = f"/v1/projects/{project['id']}"
    # A new base reward above a tier is refused; together with new tiers it is fine.
    resp = await tasks_client.patch(url, json={"reward": "0.13"}, headers=requester.headers)
    assert resp.status_code == 422 and "reward_by_level" in resp.text, resp.text
    resp = await tasks_client.patch(
        url,
        json={"reward": "0.11", "reward_by_level": {"1": "0.11", "3": "0.20"}},
        headers=requester.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["reward_by_level"] == {"1": "0.11", "3": "0.20"}
    resp = await tasks_client.patch(url, json={"reward_by_level": None}, headers=requester.headers)
    assert resp.status_code == 200 and resp.json()["reward_by_level"] is None, resp.text
    resp = await tasks_client.patch(
        url, json={"reward_by_level": {"2": "0.12"}}, headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    listed = await tasks_client.get("/v1/projects", headers=requester.headers)
    mine = [p for p in listed.json()["items"] if p["id"] == project["id"]]
    assert mine and mine[0]["reward_by_level"] == {"2": "0.12"}
    # Published: the tiers are part of what was reserved.
    published = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1),
        reward_by_level={"2": "0.12"},
        extra_funds_cents=2 + fee_cents(12) - fee_cents(10),
    )
    resp = await tasks_client.patch(
        f"/v1/projects/{published.id}",
        json={"reward_by_level": {"2": "0.50"}},
        headers=published.requester.headers,
    )
    assert resp.status_code == 409, resp.text
    resp = await tasks_client.get(
        f"/v1/projects/{published.id}", headers=published.requester.headers
    )
    assert resp.json()["reward_by_level"] == {"2": "0.12"}


# ------------------------------------------------------------------------------- the money


async def test_each_level_is_paid_its_tier_and_the_rest_of_the_slot_goes_back(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    project = await tiered_project(tasks_client, workers_client, payments_client, 5)
    assert project.project["money"]["reserved"] == f"{5 * SLOT_CENTS / 100:.2f}"
    hold = await hold_of(db, project.id)
    assert hold["reserved_total_cents"] == hold["held_cents"] == 5 * SLOT_CENTS
    levels = [0, 1, 2, 3, 3]
    crowd = await workers(workers_client, len(levels))
    work: list[dict[str, Any]] = []
    for worker, level in zip(crowd, levels, strict=True):
        await set_level(db, worker, level)
        got = await accepted(tasks_client, worker, project.id)
        assert got["reward"] == f"{REWARD_OF_LEVEL[level] / 100:.2f}", (level, got)
        resp = await submit(tasks_client, worker, got["assignment_id"], {"label": "cat"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["reward"] == got["reward"]
        work.append(resp.json())
    # While they are in flight every slot still holds the highest tier.
    view = await tasks_client.get(f"/v1/projects/{project.id}", headers=project.requester.headers)
    assert view.json()["money"]["reserved"] == f"{5 * SLOT_CENTS / 100:.2f}"
    # The single approval (one statement) for the first four, bulk review (the general path)
    # for the last.
    for w in work[:4]:
        resp = await approve(tasks_client, project.requester, w["id"])
        assert resp.status_code == 200, resp.text
    resp = await tasks_client.post(
        "/v1/assignments/review",
        json={"approve": [{"id": work[4]["id"]}]},
        headers=project.requester.headers,
    )
    assert resp.status_code == 200, resp.text
    keys = [f"pay:{w['id']}" for w in work] + [
        f"release:tier:{w['id']}" for w, level in zip(work, levels, strict=True) if level < 3
    ]
    await wait_delivered(db, keys, apps)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE key LIKE 'release:tier:%' AND key = ANY($1)",
            [f"release:tier:{w['id']}" for w in work],
        )
        == 3
    )  # the level 3 answers used their whole slot: nothing to release
    for w, worker, level in zip(work, crowd, levels, strict=True):
        reward = REWARD_OF_LEVEL[level]
        assert await payout_of(db, w["id"]) == (reward, fee_cents(reward))
        assert (await balance(payments_client, worker))["available"] == reward
    paid = sum(pay_of(level) for level in levels)
    hold = await hold_of(db, project.id)
    assert hold["held_cents"] == 0
    assert hold["spent_cents"] == paid
    assert hold["released_total_cents"] == 5 * SLOT_CENTS - paid
    money = await balance(payments_client, project.requester)
    assert money["reserved"] == 0 and money["available"] == 5 * SLOT_CENTS - paid
    view = await tasks_client.get(f"/v1/projects/{project.id}", headers=project.requester.headers)
    assert view.json()["money"] == {"reserved": "0.00", "spent": f"{paid / 100:.2f}"}
    await assert_ledger_ok(payments_client)


async def test_the_reward_is_the_one_fixed_at_accept_whatever_the_level_does_next(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """Accepted at level 1, promoted to 3 before approval: paid level 1's tier; accepted at 3,
    demoted: paid level 3's. A returned assignment's slot keeps the highest tier for the next
    worker; a rejected one pays nothing and its slot comes back; close releases the rest."""
    project = await tiered_project(tasks_client, workers_client, payments_client, 4)
    low, high, quitter, rejected = await workers(workers_client, 4)
    await set_level(db, low, 1)
    await set_level(db, high, 3)
    await set_level(db, quitter, 2)
    await set_level(db, rejected, 2)
    low_work = await accepted(tasks_client, low, project.id)
    high_work = await accepted(tasks_client, high, project.id)
    quit_work = await accepted(tasks_client, quitter, project.id)
    rej_work = await accepted(tasks_client, rejected, project.id)
    await set_level(db, low, 3)
    await set_level(db, high, 0)
    resp = await tasks_client.post(
        f"/v1/assignments/{quit_work['assignment_id']}/return", headers=quitter.headers
    )
    assert resp.status_code == 200, resp.text
    for worker, w in ((low, low_work), (high, high_work), (rejected, rej_work)):
        resp = await submit(tasks_client, worker, w["assignment_id"], {"label": "cat"})
        assert resp.status_code == 200, resp.text
    assert (
        await approve(tasks_client, project.requester, low_work["assignment_id"])
    ).status_code == 200
    assert (
        await approve(tasks_client, project.requester, high_work["assignment_id"])
    ).status_code == 200
    assert (
        await reject(tasks_client, project.requester, rej_work["assignment_id"])
    ).status_code == 200
    await wait_delivered(
        db,
        [
            f"pay:{low_work['assignment_id']}",
            f"pay:{high_work['assignment_id']}",
            f"release:tier:{low_work['assignment_id']}",
        ],
        apps,
    )
    assert await payout_of(db, low_work["assignment_id"]) == (10, fee_cents(10))
    assert await payout_of(db, high_work["assignment_id"]) == (15, fee_cents(15))
    # Two slots are open again (returned, rejected): each still holds the highest tier.
    assert await held(db, project.id) == 2 * SLOT_CENTS
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    await wait_delivered(db, [f"release:close:{project.id}"], apps)
    hold = await hold_of(db, project.id)
    assert hold["held_cents"] == 0
    assert hold["spent_cents"] == pay_of(1) + pay_of(3)
    assert hold["released_total_cents"] == 4 * SLOT_CENTS - pay_of(1) - pay_of(3)
    await assert_ledger_ok(payments_client)


# ------------------------------------------------------------------------------------ races


async def test_a_level_change_racing_accepts_pays_what_each_accept_fixed(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """The worker's level flips between 0 and 3 while the worker's accepts run concurrently
    (real requests, real Postgres): each assignment carries a tier of a level the worker had,
    with its fee, and approval pays exactly that and releases the rest of its slot."""
    n = 12
    project = await tiered_project(tasks_client, workers_client, payments_client, n)
    worker = await create_worker(workers_client)
    await set_level(db, worker, 0)
    flips_done = asyncio.Event()

    async def flip_levels() -> None:
        for i in range(30):
            await set_level(db, worker, 3 if i % 2 == 0 else 0)
            await asyncio.sleep(random.uniform(0, 0.01))
        flips_done.set()

    results = await asyncio.gather(
        flip_levels(), *(accept(tasks_client, worker, project.id) for _ in range(n))
    )
    responses = results[1:]
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    rows = await db.fetch(
        "SELECT id, reward_cents, fee_cents FROM assignments WHERE project_id = $1", project.id
    )
    assert len(rows) == n
    by_id = {r["id"]: r for r in rows}
    for resp in responses:
        body = resp.json()
        row = by_id[body["assignment_id"]]
        assert row["reward_cents"] in (10, 15), dict(row)
        assert row["fee_cents"] == fee_cents(row["reward_cents"])
        assert body["reward"] == f"{row['reward_cents'] / 100:.2f}"
    # The level moves again before review: approval still pays what accept fixed.
    await set_level(db, worker, 2)
    for resp in responses:
        assignment_id = resp.json()["assignment_id"]
        assert (
            await submit(tasks_client, worker, assignment_id, {"label": "dog"})
        ).status_code == 200
    review = await tasks_client.post(
        "/v1/assignments/review",
        json={"approve": [{"id": r["id"]} for r in rows[: n // 2]]},
        headers=project.requester.headers,
    )
    assert review.status_code == 200, review.text
    singles = await asyncio.gather(
        *(approve(tasks_client, project.requester, r["id"]) for r in rows[n // 2 :])
    )
    assert all(r.status_code == 200 for r in singles)
    releases = [f"release:tier:{r['id']}" for r in rows if r["reward_cents"] < 15]
    await wait_delivered(db, [f"pay:{r['id']}" for r in rows] + releases, apps)
    for r in rows:
        assert await payout_of(db, r["id"]) == (r["reward_cents"], r["fee_cents"])
    paid = sum(r["reward_cents"] + r["fee_cents"] for r in rows)
    hold = await hold_of(db, project.id)
    assert hold["spent_cents"] == paid
    assert hold["held_cents"] == 0
    assert hold["released_total_cents"] + paid == hold["reserved_total_cents"] == n * SLOT_CENTS
    assert (await balance(payments_client, worker))["available"] == sum(
        r["reward_cents"] for r in rows
    )
    await assert_ledger_ok(payments_client)


async def test_many_workers_of_every_level_on_one_project_account_to_the_cent(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """24 workers of levels 0-3 race for 20 slots; some answers are approved (single and
    bulk), some rejected, some returned, some left in flight. At every step:
    paid + released + still held == reserved, to the cent, and the ledger check passes."""
    n_tasks = 20
    project = await tiered_project(tasks_client, workers_client, payments_client, n_tasks)
    crowd = await workers(workers_client, 24)
    levels = {w.id: i % 4 for i, w in enumerate(crowd)}
    await asyncio.gather(*(set_level(db, w, levels[w.id]) for w in crowd))
    responses = await asyncio.gather(*(accept(tasks_client, w, project.id) for w in crowd))
    won = [(w, r.json()) for w, r in zip(crowd, responses, strict=True) if r.status_code == 201]
    assert len(won) == n_tasks, [r.text for r in responses if r.status_code != 201]
    assert all(
        r.status_code == 404 and r.json()["code"] == "no_work_available"
        for r in responses
        if r.status_code != 201
    )
    for worker, work in won:
        assert work["reward"] == f"{REWARD_OF_LEVEL[levels[worker.id]] / 100:.2f}"

    async def balanced() -> None:
        hold = await hold_of(db, project.id)
        assert (
            hold["spent_cents"] + hold["released_total_cents"] + hold["held_cents"]
            == hold["reserved_total_cents"]
            == n_tasks * SLOT_CENTS
        ), dict(hold)
        await assert_ledger_ok(payments_client)

    returned, in_flight, decided = won[:3], won[3:6], won[6:]
    await asyncio.gather(
        *(
            tasks_client.post(f"/v1/assignments/{w['assignment_id']}/return", headers=a.headers)
            for a, w in returned
        ),
        *(submit(tasks_client, a, w["assignment_id"], {"label": "cat"}) for a, w in decided),
    )
    to_reject, to_bulk, to_single = decided[:4], decided[4:9], decided[9:]
    results = await asyncio.gather(
        *(reject(tasks_client, project.requester, w["assignment_id"]) for _, w in to_reject),
        tasks_client.post(
            "/v1/assignments/review",
            json={"approve": [{"id": w["assignment_id"]} for _, w in to_bulk]},
            headers=project.requester.headers,
        ),
        *(approve(tasks_client, project.requester, w["assignment_id"]) for _, w in to_single),
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    approved = to_bulk + to_single
    keys = [f"pay:{w['assignment_id']}" for _, w in approved] + [
        f"release:tier:{w['assignment_id']}" for a, w in approved if levels[a.id] < 3
    ]
    await wait_delivered(db, keys, apps)
    paid = sum(pay_of(levels[a.id]) for a, _ in approved)
    hold = await hold_of(db, project.id)
    assert hold["spent_cents"] == paid
    # Still held: the open slots (returned, rejected, never taken) and the ones in flight, each
    # at the highest tier; everything else went back.
    still_held = (n_tasks - len(approved)) * SLOT_CENTS
    assert hold["held_cents"] == still_held
    await balanced()
    view = await tasks_client.get(f"/v1/projects/{project.id}", headers=project.requester.headers)
    assert view.json()["money"]["reserved"] == f"{still_held / 100:.2f}"
    # Close: the open slots go back now; the ones in flight when they end.
    resp = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    await wait_delivered(db, [f"release:close:{project.id}"], apps)
    await balanced()
    for a, w in in_flight:
        assert (
            await submit(tasks_client, a, w["assignment_id"], {"label": "cat"})
        ).status_code == 200
        assert (
            await approve(tasks_client, project.requester, w["assignment_id"])
        ).status_code == 200
    keys = [f"pay:{w['assignment_id']}" for _, w in in_flight] + [
        f"release:tier:{w['assignment_id']}" for a, w in in_flight if levels[a.id] < 3
    ]
    await wait_delivered(db, keys, apps)
    paid += sum(pay_of(levels[a.id]) for a, _ in in_flight)
    hold = await hold_of(db, project.id)
    assert hold["held_cents"] == 0 and hold["spent_cents"] == paid
    await balanced()


async def test_the_work_listing_and_preview_show_the_callers_own_reward(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    project = await tiered_project(tasks_client, workers_client, payments_client, 1)
    entry, expert = await workers(workers_client, 2)
    await set_level(db, expert, 3)
    for worker, mine in ((entry, "0.10"), (expert, "0.15")):
        listed = await tasks_client.get("/v1/work/projects", headers=worker.headers)
        assert listed.status_code == 200, listed.text
        [item] = [p for p in listed.json()["items"] if p["id"] == project.id]
        assert item["reward"] == "0.10"  # the base reward keeps its meaning
        assert item["reward_by_level"] == TIERS
        assert item["reward_for_your_level"] == mine
        preview = await tasks_client.get(f"/v1/work/projects/{project.id}", headers=worker.headers)
        assert preview.status_code == 200, preview.text
        assert preview.json()["reward_for_your_level"] == mine
        assert preview.json()["hourly_rate_for_your_level"] is None


async def test_an_upload_to_a_live_tiered_project_reserves_the_highest_tier(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    project = await tiered_project(tasks_client, workers_client, payments_client, 1)
    url = f"/v1/projects/{project.id}/tasks"
    # 2 more slots need 2 x 0.18; with 0.35 available the upload is refused, whole.
    await deposit(payments_client, project.requester, "0.35")
    resp = await tasks_client.post(
        url, json={"tasks": cat_tasks(2)}, headers=project.requester.headers
    )
    assert resp.status_code == 402, resp.text
    assert await held(db, project.id) == SLOT_CENTS
    await deposit(payments_client, project.requester, "0.01")
    resp = await tasks_client.post(
        url, json={"tasks": cat_tasks(2)}, headers=project.requester.headers
    )
    assert resp.status_code == 201, resp.text
    assert await held(db, project.id) == 3 * SLOT_CENTS
    assert (await balance(payments_client, project.requester))["available"] == 0
    await assert_ledger_ok(payments_client)


async def test_accept_reads_the_level_only_for_a_project_with_tiers(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """The hot path's cost without tiers is unchanged: the worker_levels probe in accept's
    statement is never executed for a project without tiers (and is, once, with them)."""
    tiered = await tiered_project(tasks_client, workers_client, payments_client, 1)
    plain = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    plans = {}
    async with db.acquire() as conn:
        for name, project in (("plain", plain), ("tiered", tiered)):
            tx = conn.transaction()
            await tx.start()
            try:
                rows = await conn.fetch(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + accepting.ACCEPT_FUSED_SQL,
                    project.id,
                    worker.id,
                    0,
                    new_id(),
                )
            finally:
                await tx.rollback()
            plans[name] = [r[0] for r in rows]
    # The facts' own level column (system.level requirements) is never run here either: these
    # projects have no requirements. Only the tier probe runs, and only with tiers.
    for name, runs in (("plain", 0), ("tiered", 1)):
        probes = [line for line in plans[name] if "on worker_levels" in line]
        assert probes, plans[name]
        assert sum("never executed" not in line for line in probes) == runs, (name, probes)
        assert any("Tuples Inserted: 1" in line for line in plans[name]), plans[name]


async def test_auto_approval_racing_replicas_pays_each_tier_and_releases_once(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """The auto-approve sweep (approve's general path), three replicas racing: each answer is
    paid its own tier once and its slot's rest is released once."""
    project = await tiered_project(
        tasks_client, workers_client, payments_client, 8, auto_approve_seconds=60
    )
    crowd = await workers(workers_client, 8)
    levels = {w.id: i % 4 for i, w in enumerate(crowd)}
    await asyncio.gather(*(set_level(db, w, levels[w.id]) for w in crowd))
    work = []
    for worker in crowd:
        got = await accepted(tasks_client, worker, project.id)
        assert (
            await submit(tasks_client, worker, got["assignment_id"], {"label": "cat"})
        ).status_code == 200
        work.append((worker, got["assignment_id"]))
    ids = [a for _, a in work]
    await db.execute(
        "UPDATE assignments SET auto_approve_at = now() - interval '1 second' WHERE id = ANY($1)",
        ids,
    )
    replicas = [
        TimerRunner(
            database=apps["tasks"].state.database,
            batch_size=2,
            poll_interval_seconds=0.05,
            grace_seconds=0.0,
            retention_seconds=7 * 86_400,
            error_backoff_seconds=0.05,
            error_backoff_cap_seconds=0.5,
            stop_timeout_seconds=5.0,
        )
        for _ in range(3)
    ]
    await asyncio.gather(*(r.drain("auto_approvals") for r in replicas))
    releases = [f"release:tier:{a}" for w, a in work if levels[w.id] < 3]
    await wait_delivered(db, [f"pay:{a}" for a in ids] + releases, apps)
    assert await db.fetchval(
        "SELECT count(*) FROM outbox WHERE key LIKE 'release:tier:%' AND key = ANY($1)",
        [f"release:tier:{a}" for a in ids],
    ) == len(releases)
    for worker, assignment_id in work:
        reward = REWARD_OF_LEVEL[levels[worker.id]]
        assert await payout_of(db, assignment_id) == (reward, fee_cents(reward))
    hold = await hold_of(db, project.id)
    paid = sum(pay_of(levels[w.id]) for w, _ in work)
    assert (hold["held_cents"], hold["spent_cents"]) == (0, paid)
    assert hold["released_total_cents"] == 8 * SLOT_CENTS - paid
    await assert_ledger_ok(payments_client)
