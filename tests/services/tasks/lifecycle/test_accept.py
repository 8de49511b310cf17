"""POST /v1/work/projects/{id}/accept: the claim under real concurrency, and its refusals."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    accept,
    accepted,
    cat_tasks,
    open_slots,
    published_project,
    submitted,
    workers,
)


async def test_200_simultaneous_accepts_on_20_slots_give_exactly_20(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    # 10 tasks x 2 slots: workers also compete for the second slot of a task.
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(10), assignments_per_task=2
    )
    crowd = await workers(workers_client, 200)
    responses = await asyncio.gather(*(accept(tasks_client, w, project.id) for w in crowd))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 20, 404: 180}, codes
    assert all(r.json()["code"] == "no_work_available" for r in responses if r.status_code == 404)
    won = [r.json() for r in responses if r.status_code == 201]
    assert len({w["assignment_id"] for w in won}) == 20
    per_task = Counter(w["task_id"] for w in won)
    assert set(per_task) == set(project.task_ids) and set(per_task.values()) == {2}
    rows = await db.fetch(
        "SELECT task_id, count(*) AS n, count(DISTINCT worker_id) AS workers FROM assignments"
        " WHERE project_id = $1 GROUP BY task_id",
        project.id,
    )
    assert {r["n"] for r in rows} == {2} and {r["workers"] for r in rows} == {2}
    assert await open_slots(db, project.id) == 0


async def test_one_worker_hammering_accept_gets_one_assignment_of_a_task(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    # One task with 5 slots: slots remain, but never two of them for the same worker.
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1),
        assignments_per_task=5,
    )
    worker = await create_worker(workers_client)
    responses = await asyncio.gather(*(accept(tasks_client, worker, project.id) for _ in range(30)))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 404: 29}, codes
    assert (
        await db.fetchval(
            "SELECT count(*) FROM assignments WHERE project_id = $1 AND worker_id = $2",
            project.id,
            worker.id,
        )
        == 1
    )
    assert await open_slots(db, project.id) == 4
    # Other workers still get the remaining slots.
    others = await workers(workers_client, 4)
    assert [(await accept(tasks_client, w, project.id)).status_code for w in others] == [201] * 4


async def test_one_worker_accepting_many_at_once_gets_each_task_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """A worker app firing accepts in parallel: the claims run side by side (nothing serializes
    one worker's accepts), two of them may pick the same task, and the loser must claim another
    task instead of failing or answering "no work" while work is left."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(10), assignments_per_task=3
    )
    worker = await create_worker(workers_client)
    responses = await asyncio.gather(*(accept(tasks_client, worker, project.id) for _ in range(16)))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 10, 404: 6}, (codes, [r.text for r in responses if r.status_code >= 500])
    taken = [r.json()["task_id"] for r in responses if r.status_code == 201]
    assert sorted(taken) == sorted(project.task_ids)
    assert await open_slots(db, project.id) == 10 * 3 - 10


async def test_accept_payload_and_a_worker_moves_through_every_task(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), assignments_per_task=3
    )
    worker = await create_worker(workers_client)
    seen = set()
    for _ in range(3):
        work = await submitted(tasks_client, worker, project.id)
        seen.add(work["task_id"])
    assert seen == set(project.task_ids)
    resp = await accept(tasks_client, worker, project.id)
    assert resp.status_code == 404 and resp.json()["code"] == "no_work_available"

    fresh = await create_worker(workers_client)
    work = await accepted(tasks_client, fresh, project.id)
    assert set(work) >= {"assignment_id", "task_id", "project_id", "input", "deadline", "reward"}
    assert work["project_id"] == project.id and work["reward"] == "0.10"
    assert work["input"]["image_url"].startswith("https://img.example/")


async def test_accept_replays_with_the_same_idempotency_key(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    worker = await create_worker(workers_client)
    key = {"Idempotency-Key": "accept-once"}
    first = await tasks_client.post(
        f"/v1/work/projects/{project.id}/accept", headers={**worker.headers, **key}
    )
    again = await tasks_client.post(
        f"/v1/work/projects/{project.id}/accept", headers={**worker.headers, **key}
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    assert (
        await db.fetchval("SELECT count(*) FROM assignments WHERE worker_id = $1", worker.id) == 1
    )


async def test_unknown_unpublished_paused_and_closed_projects_have_no_work(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    worker = await create_worker(workers_client)
    resp = await accept(tasks_client, worker, "NOSUCHPROJECT")
    assert resp.status_code == 404 and resp.json()["code"] == "no_work_available"

    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    headers = project.requester.headers
    draft = await tasks_client.post(
        "/v1/projects",
        json={
            "title": "draft",
            "task_type": "sentiment",
            "reward": "0.10",
            "assignment_duration_seconds": 600,
            "lifetime_seconds": 3600,
        },
        headers=headers,
    )
    assert draft.status_code == 201, draft.text
    resp = await accept(tasks_client, worker, draft.json()["id"])
    assert resp.status_code == 404 and resp.json()["code"] == "no_work_available"

    assert (
        await tasks_client.post(f"/v1/projects/{project.id}/pause", headers=headers)
    ).status_code == 200
    assert (await accept(tasks_client, worker, project.id)).json()["code"] == "no_work_available"
    assert (
        await tasks_client.post(f"/v1/projects/{project.id}/resume", headers=headers)
    ).status_code == 200
    assert (await accept(tasks_client, worker, project.id)).status_code == 201
    assert (
        await tasks_client.post(f"/v1/projects/{project.id}/close", headers=headers)
    ).status_code == 200
    other = await create_worker(workers_client)
    assert (await accept(tasks_client, other, project.id)).json()["code"] == "no_work_available"


async def test_requesters_cannot_accept(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    resp = await accept(tasks_client, project.requester, project.id)
    assert resp.status_code == 403 and resp.json()["code"] == "wrong_role"


async def test_unmet_requirements_are_named_and_blocked_workers_refused(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    country = "00000000000000000071"
    approved_count = "00000000000000000040"
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(3),
        qualification_requirements=[
            {"qualification_type_id": country, "comparator": "in", "values": ["DE", "FR"]},
            {"qualification_type_id": approved_count, "comparator": "gte", "values": [0]},
        ],
    )
    american = await create_worker(workers_client, country="US")
    resp = await accept(tasks_client, american, project.id)
    assert resp.status_code == 403
    problem = resp.json()
    assert problem["code"] == "not_qualified"
    unmet = problem["unmet_requirements"]
    assert [u["qualification_type_id"] for u in unmet] == [country]
    assert unmet[0]["actual"] == "US" and unmet[0]["comparator"] == "in"

    german = await create_worker(workers_client, country="DE")
    assert (await accept(tasks_client, german, project.id)).status_code == 201

    french = await create_worker(workers_client, country="FR")
    block = await workers_client.post(
        "/v1/blocks",
        json={"worker_id": french.id, "reason": "spam answers"},
        headers=project.requester.headers,
    )
    assert block.status_code in (200, 201), block.text
    resp = await accept(tasks_client, french, project.id)
    assert resp.status_code == 403 and resp.json()["code"] == "blocked"
    # refusals change nothing
    assert (
        await db.fetchval(
            "SELECT count(*) FROM assignments WHERE worker_id = ANY($1)", [american.id, french.id]
        )
        == 0
    )
    assert await open_slots(db, project.id) == 2


async def test_expired_tasks_are_not_offered(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    await db.execute(
        "UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1",
        project.task_ids[0],
    )
    first = await accepted(tasks_client, await create_worker(workers_client), project.id)
    assert first["task_id"] == project.task_ids[1]
    resp = await accept(tasks_client, await create_worker(workers_client), project.id)
    assert resp.status_code == 404


async def test_a_slot_held_for_an_instant_is_waited_for_not_reported_missing(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """SKIP LOCKED alone would answer no_work_available here although the slot is free the
    moment the other transaction ends; accept's last pass waits for it instead."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    async with db.acquire() as conn:
        holder = conn.transaction()
        await holder.start()
        await conn.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", project.task_ids[0])
        pending = asyncio.create_task(accept(tasks_client, worker, project.id))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await holder.rollback()
    resp = await pending
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_id"] == project.task_ids[0]


async def test_same_worker_accept_waits_for_its_own_uncommitted_claim(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """One worker's accept still in flight (claimed, not yet committed) while the same worker
    accepts again: the second waits for the task row, then must see the first's assignment, not
    collide with it (a unique violation would be a 500). The in-flight accept is played by SQL
    that does what the claim statement does."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=3
    )
    task_id = project.task_ids[0]
    worker = await create_worker(workers_client)
    async with db.acquire() as conn:
        first = conn.transaction()
        await first.start()
        await conn.execute("UPDATE tasks SET open_slots = open_slots - 1 WHERE id = $1", task_id)
        await conn.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                                     reward_cents, fee_cents, deadline)
            VALUES ('INFLIGHT' || $2, $1, $3, $4, $2, 10, 2, now() + interval '10 minutes')
            """,
            task_id,
            worker.id,
            project.id,
            project.requester.id,
        )
        pending = asyncio.create_task(accept(tasks_client, worker, project.id))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await first.commit()
    resp = await pending
    assert resp.status_code == 404 and resp.json()["code"] == "no_work_available", resp.text
    assert await open_slots(db, project.id) == 2


async def test_a_claim_that_meets_its_own_workers_fresh_assignment_claims_another_task(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """The claim's snapshot cannot show an assignment the same worker's other accept commits
    while this one waits for the task row; its insert then does nothing (the unique (task,
    worker)), and accept must claim again and get the other free task, not answer no work."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2), assignments_per_task=2
    )
    first_task, other_task = project.task_ids
    await db.execute(
        "UPDATE tasks SET claim_rank = CASE WHEN id = $1 THEN 0 ELSE 1 END WHERE project_id = $2",
        first_task,
        project.id,
    )
    worker = await create_worker(workers_client)
    async with db.acquire() as inflight, db.acquire() as holder:
        claim = inflight.transaction()  # the worker's other accept, claiming the first task
        await claim.start()
        await inflight.execute(
            "UPDATE tasks SET open_slots = open_slots - 1 WHERE id = $1", first_task
        )
        await inflight.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                                     reward_cents, fee_cents, deadline)
            VALUES ('INFLIGHT' || $2, $1, $3, $4, $2, 10, 2, now() + interval '10 minutes')
            """,
            first_task,
            worker.id,
            project.id,
            project.requester.id,
        )
        hold = holder.transaction()  # someone holding the other task's row for a moment
        await hold.start()
        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", other_task)
        pending = asyncio.create_task(accept(tasks_client, worker, project.id))
        await asyncio.sleep(0.3)  # both rows locked: the last, waiting pass waits on the first
        assert not pending.done()
        await claim.commit()
        await asyncio.sleep(0.3)  # its insert met the committed assignment; it claims again
        await hold.commit()
    resp = await pending
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_id"] == other_task
    assert await open_slots(db, project.id) == 2
