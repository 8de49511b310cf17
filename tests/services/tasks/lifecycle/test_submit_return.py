"""Submit, return, expiry and the two assignment lists."""

from __future__ import annotations

import asyncio

import httpx

from services.tasks.lifecycle.expire import expire_overdue_assignments
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    accept,
    accepted,
    cat_tasks,
    open_slots,
    published_project,
    submit,
    submitted,
)


async def expire_now(apps: dict, db, assignment_id: str) -> int:
    """Move the deadline into the past and run what the deadline timer will run."""
    await db.execute(
        "UPDATE assignments SET deadline = now() - interval '1 second' WHERE id = $1",
        assignment_id,
    )
    async with apps["tasks"].state.database.transaction() as tx:
        expired = await expire_overdue_assignments(tx, 1000)
    return expired


async def test_submit_sets_times_and_validates_the_answer(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1),
        auto_approve_seconds=3600,
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    for bad, loc in (
        ({"label": "horse"}, ["body", "answer", "label"]),
        ({"label": "cat", "extra": 1}, ["body", "answer"]),
        ({}, ["body", "answer"]),
        ("cat", ["body", "answer"]),
    ):
        resp = await submit(tasks_client, worker, work["assignment_id"], bad)
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        assert problem["code"] == "validation_error"
        assert problem["errors"][0]["loc"] == loc
    row = await db.fetchrow(
        "SELECT status, answer FROM assignments WHERE id = $1", work["assignment_id"]
    )
    assert row["status"] == "accepted" and row["answer"] is None

    unknown_field = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/submit",
        json={"answer": {"label": "cat"}, "note": "x"},
        headers=worker.headers,
    )
    assert unknown_field.status_code == 422

    resp = await submit(tasks_client, worker, work["assignment_id"], {"label": "dog"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "submitted" and body["answer"] == {"label": "dog"}
    row = await db.fetchrow(
        "SELECT auto_approve_at - submitted_at AS wait FROM assignments WHERE id = $1",
        work["assignment_id"],
    )
    assert row["wait"].total_seconds() == 3600

    again = await submit(tasks_client, worker, work["assignment_id"], {"label": "cat"})
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"


async def test_only_the_holder_can_submit_or_return(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    holder, stranger = await create_worker(workers_client), await create_worker(workers_client)
    work = await accepted(tasks_client, holder, project.id)
    resp = await submit(tasks_client, stranger, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    resp = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/return", headers=stranger.headers
    )
    assert resp.status_code == 404
    resp = await submit(tasks_client, holder, "NOSUCHASSIGNMENT", {"label": "cat"})
    assert resp.status_code == 404
    resp = await submit(tasks_client, project.requester, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 403


async def test_submit_after_expiry_is_refused_and_the_new_holder_is_accepted(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    late, next_worker = await create_worker(workers_client), await create_worker(workers_client)
    work = await accepted(tasks_client, late, project.id)

    # Past the deadline, before the timer ran: refused, and nothing changes.
    await db.execute(
        "UPDATE assignments SET deadline = now() - interval '1 second' WHERE id = $1",
        work["assignment_id"],
    )
    resp = await submit(tasks_client, late, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 409 and resp.json()["code"] == "assignment_expired"
    assert await db.fetchval(
        "SELECT status FROM assignments WHERE id = $1", work["assignment_id"]
    ) == ("accepted")

    # The timer expires it; the slot goes to someone else, whose answer counts.
    assert await expire_now(apps, db, work["assignment_id"]) >= 1
    assert await open_slots(db, project.id) == 1
    second = await accepted(tasks_client, next_worker, project.id)
    assert second["task_id"] == work["task_id"]
    resp = await submit(tasks_client, late, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 409 and resp.json()["code"] == "assignment_expired"
    resp = await submit(tasks_client, next_worker, second["assignment_id"], {"label": "dog"})
    assert resp.status_code == 200 and resp.json()["status"] == "submitted"
    statuses = await db.fetch(
        "SELECT worker_id, status FROM assignments WHERE task_id = $1", work["task_id"]
    )
    assert {(r["worker_id"], r["status"]) for r in statuses} == {
        (late.id, "expired"),
        (next_worker.id, "submitted"),
    }
    # The expired worker cannot take the same task again.
    assert (await accept(tasks_client, late, project.id)).status_code == 404


async def test_submit_racing_the_expiry_timer_decides_once(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    await db.execute(
        "UPDATE assignments SET deadline = now() + interval '300 milliseconds' WHERE id = $1",
        work["assignment_id"],
    )
    await asyncio.sleep(0.3)

    async def timer() -> int:
        async with apps["tasks"].state.database.transaction() as tx:
            return await expire_overdue_assignments(tx, 10)

    resp, _ = await asyncio.gather(
        submit(tasks_client, worker, work["assignment_id"], {"label": "cat"}), timer()
    )
    await timer()  # whatever the race left accepted-but-overdue is expired now
    status = await db.fetchval(
        "SELECT status FROM assignments WHERE id = $1", work["assignment_id"]
    )
    # Exactly one of the two decided: an answer taken never also frees its slot.
    if resp.status_code == 200:
        assert status == "submitted" and await open_slots(db, project.id) == 0
    else:
        assert resp.json()["code"] == "assignment_expired"
        assert status == "expired" and await open_slots(db, project.id) == 1


async def test_return_gives_the_slot_back_at_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    first, second = await create_worker(workers_client), await create_worker(workers_client)
    work = await accepted(tasks_client, first, project.id)
    assert (await accept(tasks_client, second, project.id)).status_code == 404
    resp = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/return", headers=first.headers
    )
    assert resp.status_code == 200 and resp.json()["status"] == "returned"
    assert await open_slots(db, project.id) == 1
    again = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/return", headers=first.headers
    )
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    taken = await accepted(tasks_client, second, project.id)
    assert taken["task_id"] == work["task_id"]
    # a worker who returned a task is not offered it again
    assert (await accept(tasks_client, first, project.id)).status_code == 404


async def test_worker_and_project_lists(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(4), assignments_per_task=2
    )
    worker = await create_worker(workers_client)
    done = [await submitted(tasks_client, worker, project.id) for _ in range(3)]
    open_one = await accepted(tasks_client, worker, project.id)

    mine = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert mine.status_code == 200
    items = mine.json()["items"]
    assert [i["id"] for i in items] == [
        open_one["assignment_id"],
        *[d["id"] for d in reversed(done)],
    ]
    assert all(i["project_title"] == "Is this a cat?" and i["reward"] == "0.10" for i in items)
    only = await tasks_client.get(
        "/v1/workers/me/assignments", params={"status": "accepted"}, headers=worker.headers
    )
    assert [i["id"] for i in only.json()["items"]] == [open_one["assignment_id"]]

    pages, cursor = [], None
    while True:
        params = {"status": "submitted", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await tasks_client.get(
            f"/v1/projects/{project.id}/assignments",
            params=params,
            headers=project.requester.headers,
        )
        assert page.status_code == 200, page.text
        pages.append([i["id"] for i in page.json()["items"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [[done[2]["id"], done[1]["id"]], [done[0]["id"]]]
    everything = await tasks_client.get(
        f"/v1/projects/{project.id}/assignments", headers=project.requester.headers
    )
    assert [i["id"] for i in everything.json()["items"]] == [i["id"] for i in items]

    stranger = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    foreign = await tasks_client.get(
        f"/v1/projects/{project.id}/assignments", headers=stranger.requester.headers
    )
    assert foreign.status_code == 404
    bad = await tasks_client.get(
        "/v1/workers/me/assignments", params={"status": "lost"}, headers=worker.headers
    )
    assert bad.status_code == 422


async def test_concurrent_submits_and_a_return_of_one_assignment_decide_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """Submit reads, checks the answer, then writes with the state re-checked in the same
    statement: of five submits and a return racing on one assignment exactly one wins, and the
    worker's tally in the project (gold_stats) counts one submission or none."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), assignments_per_task=1
    )
    worker = await create_worker(workers_client)
    for _ in range(3):
        work = await accepted(tasks_client, worker, project.id)
        assignment_id = work["assignment_id"]
        before = await db.fetchval(
            "SELECT coalesce(sum(submitted), 0) FROM gold_stats WHERE project_id = $1",
            project.id,
        )
        calls = [submit(tasks_client, worker, assignment_id, {"label": "cat"}) for _ in range(5)]
        calls.append(
            tasks_client.post(f"/v1/assignments/{assignment_id}/return", headers=worker.headers)
        )
        answers = await asyncio.gather(*calls)
        codes = [r.status_code for r in answers]
        assert codes.count(200) == 1, [r.text for r in answers]
        assert all(c == 409 for c in codes if c != 200), [r.text for r in answers]
        status = await db.fetchval("SELECT status FROM assignments WHERE id = $1", assignment_id)
        counted = await db.fetchval(
            "SELECT coalesce(sum(submitted), 0) FROM gold_stats WHERE project_id = $1",
            project.id,
        )
        won_by_submit = answers[codes.index(200)] is not answers[-1]
        assert status == ("submitted" if won_by_submit else "returned")
        assert counted - before == (1 if won_by_submit else 0)
