"""Discovery and preview: what a worker may see, the stats shown, and speed at 10,000 projects."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from services.tasks.discovery import repository as discovery_repository
from services.tasks.discovery import service as discovery_service
from shared.ids import new_id
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.projects import (
    add_tasks,
    create_project,
    funded_published_project,
    image_tasks,
    insert_assignment,
    task_ids,
)

SYSTEM_COUNTRY = "00000000000000000071"


async def _work(tasks_client: httpx.AsyncClient, worker: Actor, **params: Any) -> dict[str, Any]:
    resp = await tasks_client.get("/v1/work/projects", params=params, headers=worker.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _listed(tasks_client: httpx.AsyncClient, worker: Actor) -> dict[str, dict[str, Any]]:
    """The worker's whole discovery list (walking every page), by project id."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = await _work(
            tasks_client, worker, limit=200, **({"cursor": cursor} if cursor else {})
        )
        found.update({p["id"]: p for p in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_lists_claimable_work_with_counts_and_estimates(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(4),
        assignments_per_task=2,
        estimated_seconds_per_assignment=30,
    )
    worker = await create_worker(workers_client)
    others = [await create_worker(workers_client) for _ in range(2)]
    ids = await task_ids(db, project["id"])
    # task 0: this worker already answered it (one slot is left for others); task 1: both its
    # slots are held by others; task 2: expired. Only task 3 is left for this worker.
    await insert_assignment(
        db, task_id=ids[0], worker_id=worker.id, status="submitted", answer={"label": "cat"}
    )
    for other in others:
        await insert_assignment(db, task_id=ids[1], worker_id=other.id, status="accepted")
    await db.execute(
        "UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1", ids[2]
    )
    listed = await _listed(tasks_client, worker)
    item = listed[project["id"]]
    assert item["available_tasks"] == 1
    assert item["reward"] == "0.25" and item["title"] == project["title"]
    assert item["hourly_rate_estimate"] == "30.00"  # 0.25 per 30 s (the requester's estimate)
    assert item["estimated_seconds_per_assignment"] == 30
    assert item["requester_stats"] == {
        "approval_rate_given": None,
        "median_review_seconds": None,
        "effective_hourly_pay": None,
        "timesheets_disputed_rate": None,
        "pay_floor_set": False,
        "rejections_given": 0,
        "appeals_received": 0,
        "appeals_overturned": 0,
    }
    assert item["pay_model"] == "per_assignment" and item["min_hourly_rate"] is None
    assert set(item) >= {"id", "title", "description", "keywords", "task_type", "requester_stats"}
    # A newcomer may still take task 0's last slot, and task 3.
    fresh = await create_worker(workers_client)
    assert (await _listed(tasks_client, fresh))[project["id"]]["available_tasks"] == 2


async def test_drafts_paused_closed_and_exhausted_projects_are_not_listed(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    draft = await create_project(tasks_client, requester)
    paused = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(1)
    )
    await tasks_client.post(f"/v1/projects/{paused['id']}/pause", headers=requester.headers)
    closed = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(1)
    )
    await tasks_client.post(f"/v1/projects/{closed['id']}/close", headers=requester.headers)
    done = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(1)
    )
    worker = await create_worker(workers_client)
    [only_task] = await task_ids(db, done["id"])
    await insert_assignment(
        db, task_id=only_task, worker_id=worker.id, status="approved", answer={"label": "cat"}
    )
    listed = await _listed(tasks_client, worker)
    assert not {draft["id"], paused["id"], closed["id"], done["id"]} & set(listed)
    for project in (draft, paused, closed):
        resp = await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
        assert resp.status_code == 404 and resp.json()["code"] == "not_found"


async def test_a_project_past_its_lifetime_offers_only_the_tasks_added_later(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """Tasks uploaded before publish expire with the project's lifetime, tasks added later
    with their own: listing, counts and preview follow each task's expiry, whether or not the
    lifetime sweep has been there yet."""
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(3)
    )
    await add_tasks(tasks_client, requester, project["id"], image_tasks(2, start=10))
    worker = await create_worker(workers_client)
    assert (await _listed(tasks_client, worker))[project["id"]]["available_tasks"] == 5

    await db.execute(
        "UPDATE projects SET tasks_expire_at = now() - interval '1 second' WHERE id = $1",
        project["id"],
    )
    assert (await _listed(tasks_client, worker))[project["id"]]["available_tasks"] == 2
    preview = (
        await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
    ).json()
    assert preview["available_tasks"] == 2
    assert preview["sample_input"]["image_url"] in {
        "https://img.example/10.jpg",
        "https://img.example/11.jpg",
    }

    await db.execute(
        "UPDATE tasks SET expires_at = now() - interval '1 second'"
        " WHERE project_id = $1 AND expires_at IS NOT NULL",
        project["id"],
    )
    assert project["id"] not in await _listed(tasks_client, worker)
    preview = (
        await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
    ).json()
    assert preview["available_tasks"] == 0 and preview["sample_input"] is None


async def test_blocked_worker_sees_nothing_of_that_requester(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(1)
    )
    worker = await create_worker(workers_client)
    assert project["id"] in await _listed(tasks_client, worker)
    resp = await workers_client.post(
        "/v1/blocks",
        json={"worker_id": worker.id, "reason": "spam answers"},
        headers=requester.headers,
    )
    assert resp.status_code in (200, 201), resp.text
    assert project["id"] not in await _listed(tasks_client, worker)
    preview = await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
    assert preview.status_code == 403 and preview.json()["code"] == "blocked"


async def test_requirements_guard_discovery_and_preview(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    us_only = {"qualification_type_id": SYSTEM_COUNTRY, "comparator": "eq", "values": ["US"]}
    hidden = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(1),
        qualification_requirements=[{**us_only, "guard": "discover"}],
    )
    previewable = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(1),
        qualification_requirements=[{**us_only, "guard": "accept"}],
    )
    no_preview = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(1),
        qualification_requirements=[{**us_only, "guard": "preview"}],
    )
    german = await create_worker(workers_client, country="DE")
    american = await create_worker(workers_client, country="US")
    seen_by_german = await _listed(tasks_client, german)
    assert hidden["id"] not in seen_by_german
    assert previewable["id"] in seen_by_german and no_preview["id"] in seen_by_german
    assert {hidden["id"], previewable["id"], no_preview["id"]} <= set(
        await _listed(tasks_client, american)
    )
    ok = await tasks_client.get(f"/v1/work/projects/{previewable['id']}", headers=german.headers)
    assert ok.status_code == 200
    refused = await tasks_client.get(
        f"/v1/work/projects/{no_preview['id']}", headers=german.headers
    )
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["code"] == "not_qualified"
    [unmet] = problem["unmet_requirements"]
    assert unmet["qualification_type_id"] == SYSTEM_COUNTRY and unmet["actual"] == "DE"
    assert problem["errors"] and problem["errors"][0]["msg"]


async def test_failed_gold_standard_hides_the_project(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    strict = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(5), min_gold_accuracy=80
    )
    lenient = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(5), min_gold_accuracy=30
    )
    worker = await create_worker(workers_client)
    few = await create_worker(workers_client)
    for project in (strict, lenient):
        await db.execute(
            "INSERT INTO gold_stats (project_id, worker_id, answered, correct) "
            "VALUES ($1, $2, 3, 1), ($1, $3, 2, 0)",
            project["id"],
            worker.id,
            few.id,
        )
    listed = await _listed(tasks_client, worker)
    assert strict["id"] not in listed and lenient["id"] in listed  # 33% vs 80% and 30%
    # two gold answers are not enough to judge
    assert strict["id"] in await _listed(tasks_client, few)


async def test_measured_hourly_rate_and_requester_stats(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    reviewed = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(4), assignments_per_task=1
    )
    measured = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(4),
        assignments_per_task=1,
        estimated_seconds_per_assignment=10,
    )
    workers = [await create_worker(workers_client) for _ in range(4)]
    reviewed_ids = await task_ids(db, reviewed["id"])
    for i, (status, review) in enumerate(
        [("approved", 100), ("approved", 200), ("approved", 300), ("rejected", 1000)]
    ):
        await insert_assignment(
            db,
            task_id=reviewed_ids[i],
            worker_id=workers[i].id,
            status=status,
            answer={"label": "cat"},
            working_seconds=120,
            review_seconds=review,
        )
    measured_ids = await task_ids(db, measured["id"])
    for i, seconds in enumerate([90, 100, 130]):  # 320 s in all: enough measured work
        await insert_assignment(
            db,
            task_id=measured_ids[i],
            worker_id=workers[i].id,
            status="submitted",
            answer={"label": "dog"},
            working_seconds=seconds,
        )
    async with apps["tasks"].state.database.transaction() as tx:
        await discovery_service.refresh_scorecards_of(tx, [requester.id])
    viewer = await create_worker(workers_client)
    listed = await _listed(tasks_client, viewer)
    item = listed[measured["id"]]
    # median measured time 100 s beats the 10 s estimate: 0.25 x 36 per hour
    assert item["hourly_rate_estimate"] == "9.00"
    assert item["hourly_rate_basis"] == "measured" and item["measured_seconds"] == 320
    # 3 approved answers of 120 s at 0.25: 7.50 an hour each (the submitted ones are not paid)
    assert item["requester_stats"] == {
        "approval_rate_given": 75.0,
        "median_review_seconds": 250,
        "effective_hourly_pay": "7.50",
        "timesheets_disputed_rate": None,
        "pay_floor_set": False,
        "rejections_given": 1,
        "appeals_received": 0,
        "appeals_overturned": 0,
    }
    # 3 approved answers of 120 s (the rejected one is not working time that counts)
    assert listed[reviewed["id"]]["hourly_rate_estimate"] == "7.50"


async def test_preview_shows_instructions_and_a_sample_the_worker_can_take(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[{"input": {"n": 0}}, {"input": {"n": 1}, "gold_answer": {"label": "dog"}}],
    )
    worker = await create_worker(workers_client)
    ids = await task_ids(db, project["id"])
    await insert_assignment(
        db, task_id=ids[0], worker_id=worker.id, status="submitted", answer={"label": "cat"}
    )
    resp = await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    preview = resp.json()
    assert preview["instructions"] == project["instructions"]
    assert preview["sample_input"] == {"n": 1}
    assert preview["available_tasks"] == 1
    assert preview["answer_schema"]["properties"]["label"]["enum"] == ["cat", "dog", "bird"]
    assert "gold_answer" not in orjson.dumps(preview).decode()
    await insert_assignment(
        db, task_id=ids[1], worker_id=worker.id, status="submitted", answer={"label": "dog"}
    )
    drained = (
        await tasks_client.get(f"/v1/work/projects/{project['id']}", headers=worker.headers)
    ).json()
    assert drained["sample_input"] is None and drained["available_tasks"] == 0
    requester_view = await tasks_client.get(
        f"/v1/work/projects/{project['id']}", headers=requester.headers
    )
    assert requester_view.status_code == 403
    unknown = await tasks_client.get("/v1/work/projects/NOPE", headers=worker.headers)
    assert unknown.status_code == 404


async def test_pagination_is_newest_first_without_gaps(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    created = [
        (
            await funded_published_project(
                tasks_client, payments_client, requester, tasks=image_tasks(1), funds="5.00"
            )
        )["id"]
        for _ in range(5)
    ]
    worker = await create_worker(workers_client)
    seen: list[str] = []
    cursor = None
    while len(seen) < 5:
        page = await _work(tasks_client, worker, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        assert cursor is not None
    assert seen[:5] == list(reversed(created))  # the newest projects of the whole site


async def test_stays_fast_with_10000_published_projects(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db,
) -> None:
    """10,000 published projects (one task each) from 100 requesters; the newest 2,000 require
    a qualification the worker lacks (guard discover), so the first page must scan past them."""
    requesters = [await create_requester(workers_client) for _ in range(100)]
    requirement = [
        {
            "qualification_type_id": SYSTEM_COUNTRY,
            "comparator": "eq",
            "values": ["US"],
            "guard": "discover",
        }
    ]
    project_rows = []
    task_rows = []
    for i in range(10_000):
        pid = new_id()
        owner = requesters[i % 100].id
        hidden = i >= 8_000
        project_rows.append(
            (
                pid,
                owner,
                "published",
                f"Bulk {i}",
                "classification",
                '["a", "b"]',
                5,
                1,
                3,
                60,
                86400,
                3600,
                orjson.dumps(requirement if hidden else []).decode(),
            )
        )
        task_rows.append((new_id(), pid, owner, '{"n": 1}', 3, 3, "open"))
    try:
        async with db.acquire() as conn:
            await conn.copy_records_to_table(
                "projects",
                records=project_rows,
                columns=[
                    "id",
                    "requester_id",
                    "status",
                    "title",
                    "task_type",
                    "labels",
                    "reward_cents",
                    "fee_cents",
                    "assignments_per_task",
                    "assignment_duration_seconds",
                    "lifetime_seconds",
                    "auto_approve_seconds",
                    "qualification_requirements",
                ],
            )
            await conn.execute("UPDATE projects SET published_at = now() WHERE title LIKE 'Bulk %'")
            await conn.copy_records_to_table(
                "tasks",
                records=task_rows,
                columns=[
                    "id",
                    "project_id",
                    "requester_id",
                    "input",
                    "max_assignments",
                    "open_slots",
                    "status",
                ],
            )
            await conn.execute(
                "UPDATE tasks SET expires_at = now() + interval '1 day' "
                "WHERE project_id = ANY($1::text[])",
                [r[0] for r in project_rows],
            )
            await conn.execute("ANALYZE projects; ANALYZE tasks")
        worker = await create_worker(workers_client, country="DE")
        await _work(tasks_client, worker, limit=50)  # warm-up
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            page = await _work(tasks_client, worker, limit=50)
            timings.append(time.perf_counter() - start)
        assert len(page["items"]) == 50
        bulk_ids = {r[0] for r in project_rows}
        visible = [p["id"] for p in page["items"] if p["id"] in bulk_ids]
        assert visible and all(
            int(p["title"].split()[1]) < 8_000 for p in page["items"] if p["id"] in bulk_ids
        )
        start = time.perf_counter()
        next_page = await _work(tasks_client, worker, limit=50, cursor=page["next_cursor"])
        second = time.perf_counter() - start
        assert len(next_page["items"]) == 50
        print(
            f"discovery with 10k projects: first page {min(timings) * 1000:.0f} ms "
            f"(scanning past 2,000 hidden), next page {second * 1000:.0f} ms"
        )
    finally:
        await db.execute(
            "UPDATE projects SET status = 'closed' WHERE id = ANY($1::text[])",
            [r[0] for r in project_rows],
        )


async def test_listing_probes_each_project_instead_of_scanning_every_open_task(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db,
) -> None:
    """A worker who has done a few hundred tasks, 3,000 published projects and one project of
    60,000 open tasks: the listing's plan must probe each project's queue index and stop at its
    first claimable task. Unfenced, Postgres turns the worker's NOT EXISTS into a hash anti-join:
    over every open task of every project (137 ms vs 0.5 ms at 300,000 open tasks in the bench),
    or, as here, over all of the worker's assignments once per listed project."""
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    project_columns = [
        "id", "requester_id", "status", "title", "task_type", "labels", "reward_cents",
        "fee_cents", "assignments_per_task", "assignment_duration_seconds", "lifetime_seconds",
        "auto_approve_seconds", "qualification_requirements",
    ]  # fmt: skip
    task_columns = ["id", "project_id", "requester_id", "input", "max_assignments",
                    "open_slots", "status", "claim_rank"]  # fmt: skip

    def project_row(title: str) -> tuple[Any, ...]:
        return (new_id(), requester.id, "published", title, "classification", '["a", "b"]',
                5, 1, 1, 60, 86400, 3600, "[]")  # fmt: skip

    small = [project_row(f"Probe {i}") for i in range(3_000)]
    big = project_row("Probe big")
    project_ids = [r[0] for r in (*small, big)]
    big_tasks = [new_id() for _ in range(60_000)]
    task_rows = [(new_id(), r[0], requester.id, "{}", 1, 1, "open", i) for i, r in enumerate(small)]
    task_rows += [(t, big[0], requester.id, "{}", 1, 1, "open", i) for i, t in enumerate(big_tasks)]
    done = big_tasks[::300]  # 200 of the big project's tasks the worker already holds
    try:
        async with db.acquire() as conn:
            await conn.copy_records_to_table(
                "projects", records=[*small, big], columns=project_columns
            )
            await conn.execute(
                "UPDATE projects SET published_at = now() WHERE id = ANY($1::text[])", project_ids
            )
            await conn.copy_records_to_table("tasks", records=task_rows, columns=task_columns)
            await conn.execute(
                "UPDATE tasks SET expires_at = now() + interval '1 day' "
                "WHERE project_id = ANY($1::text[])",
                project_ids,
            )
            await conn.executemany(
                "INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id, "
                "status, reward_cents, fee_cents, accepted_at, deadline) "
                "VALUES ($1, $2, $3, $4, $5, 'accepted', 5, 1, now(), now() + interval '1 hour')",
                [(new_id(), t, big[0], requester.id, worker.id) for t in done],
            )
            await conn.execute("ANALYZE projects; ANALYZE tasks; ANALYZE assignments")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN " + discovery_repository.PUBLISHED_WITH_WORK_SQL, worker.id, None, 51
                )
            )
        # Per project: one probe of the queue index, and per task looked at one probe of the
        # worker's (task, worker) key; no scan of tasks or of the worker's assignments, no join.
        assert "Seq Scan" not in plan and "Join" not in plan, plan
        assert "Index Scan Backward using ix_projects_published" in plan, plan
        assert "Index Scan using ix_tasks_claim" in plan, plan
        assert "Index Only Scan using uq_assignments_task_id_worker_id" in plan, plan
        page = await _work(tasks_client, worker, limit=50)
        assert [p["id"] for p in page["items"]] == sorted(project_ids, reverse=True)[:50]
        listed = await _listed(tasks_client, worker)
        assert listed[big[0]]["available_tasks"] == 60_000 - len(done)
    finally:
        await db.execute(
            "UPDATE projects SET status = 'closed' WHERE id = ANY($1::text[])", project_ids
        )
