"""`GET /v1/work/projects`: `hourly_rate_estimate` never extrapolates from a few seconds of
measured work (three 10 ms answers used to make 1.00 a task "3600.00 an hour")."""

from __future__ import annotations

from typing import Any

import httpx

from shared.money import MIN_RATE_SECONDS
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.projects import (
    funded_published_project,
    image_tasks,
    insert_assignment,
    task_ids,
)


async def _listed(tasks_client: httpx.AsyncClient, worker: Actor) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        resp = await tasks_client.get("/v1/work/projects", params=params, headers=worker.headers)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        found.update({p["id"]: p for p in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return found


async def test_a_rate_over_milliseconds_of_measured_work_is_not_reported(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    no_estimate = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(5), reward="1.00"
    )
    with_estimate = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=image_tasks(5),
        reward="1.00",
        estimated_seconds_per_assignment=120,
    )
    workers = [await create_worker(workers_client) for _ in range(3)]
    for project in (no_estimate, with_estimate):
        ids = await task_ids(db, project["id"])
        for i, worker in enumerate(workers):
            await insert_assignment(
                db,
                task_id=ids[i],
                worker_id=worker.id,
                status="submitted",
                answer={"label": "cat"},
                working_seconds=0.01,
            )
    listed = await _listed(tasks_client, await create_worker(workers_client))

    item = listed[no_estimate["id"]]
    assert item["hourly_rate_estimate"] is None  # was "3600.00"
    assert item["hourly_rate_basis"] is None and item["measured_seconds"] == 0

    item = listed[with_estimate["id"]]
    assert item["hourly_rate_estimate"] == "30.00"  # the requester's 120 s, not 10 ms
    assert item["hourly_rate_basis"] == "estimate" and item["measured_seconds"] == 0
    assert MIN_RATE_SECONDS == 300
