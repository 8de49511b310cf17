"""POST /v1/tasks/{id}/dispose: a finished task leaves the lists; answers and money stay."""

from __future__ import annotations

import httpx

from tests.fixtures.accounts import create_requester
from tests.fixtures.task_changes import add_assignments, at, dispose, set_expiry
from tests.fixtures.tasks import (
    accepted,
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    published_project,
    reject,
    submitted,
    wait_delivered,
    workers,
)


async def _listed(client: httpx.AsyncClient, project, **params: str) -> set[str]:
    resp = await client.get(
        f"/v1/projects/{project.id}/tasks", params=params, headers=project.requester.headers
    )
    assert resp.status_code == 200, resp.text
    return {t["id"] for t in resp.json()["items"]}


async def test_only_a_finished_task_without_work_in_flight_is_disposed(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2), assignments_per_task=2
    )
    task_id = project.task_ids[0]
    alice = (await workers(workers_client, 1))[0]

    resp = await dispose(tasks_client, project.requester, task_id)  # still offered
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")

    done = await submitted(tasks_client, alice, project.id)
    busy = done["task_id"]
    await set_expiry(tasks_client, project.requester, busy, at(-1))
    resp = await dispose(tasks_client, project.requester, busy)  # an answer awaits review
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    assert (await approve(tasks_client, project.requester, done["id"])).status_code == 200
    await wait_delivered(db, [f"pay:{done['id']}", f"release:expire:{busy}:0"], apps)
    before = await balance(payments_client, project.requester)

    resp = await dispose(tasks_client, project.requester, busy)
    assert resp.status_code == 200, resp.text
    task = resp.json()
    assert task["disposed_at"] is not None and task["status"] == "expired"
    assert [a["status"] for a in task["assignments"]] == ["approved"]  # the answer stays
    again = await dispose(tasks_client, project.requester, busy)
    assert again.status_code == 200 and again.json()["disposed_at"] == task["disposed_at"]

    others = set(project.task_ids) - {busy}
    assert await _listed(tasks_client, project) == others
    assert await _listed(tasks_client, project, include_disposed="true") == set(project.task_ids)
    resp = await tasks_client.get(f"/v1/tasks/{busy}", headers=project.requester.headers)
    assert resp.status_code == 200 and resp.json()["disposed_at"] == task["disposed_at"]
    results = await tasks_client.get(
        f"/v1/projects/{project.id}/results", headers=project.requester.headers
    )
    assert busy in {r["task_id"] for r in results.json()}

    # Final: no more assignments, no expiry change; no money moved.
    resp = await add_assignments(tasks_client, project.requester, busy, 1)
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    resp = await set_expiry(tasks_client, project.requester, busy, at(3600))
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    assert await balance(payments_client, project.requester) == before
    await assert_ledger_ok(payments_client)


async def test_a_disposed_tasks_rejections_are_final(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), extra_funds_cents=100
    )
    task_id = project.task_ids[0]
    alice = (await workers(workers_client, 1))[0]
    done = await submitted(tasks_client, alice, project.id)
    assert (await reject(tasks_client, project.requester, done["id"])).status_code == 200
    await set_expiry(tasks_client, project.requester, task_id, at(-1))
    assert (await dispose(tasks_client, project.requester, task_id)).status_code == 200
    resp = await approve(tasks_client, project.requester, done["id"])
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    status = await db.fetchval("SELECT status FROM assignments WHERE id = $1", done["id"])
    assert status == "rejected"


async def test_completed_and_closed_tasks_and_someone_elses(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    alice = (await workers(workers_client, 1))[0]
    done = await submitted(tasks_client, alice, project.id)
    assert (await approve(tasks_client, project.requester, done["id"])).status_code == 200
    stranger = await create_requester(workers_client)
    resp = await dispose(tasks_client, stranger, done["task_id"])
    assert (resp.status_code, resp.json()["code"]) == (404, "not_found")
    resp = await dispose(tasks_client, project.requester, done["task_id"])  # completed
    assert resp.status_code == 200 and resp.json()["status"] == "completed"

    other = next(t for t in project.task_ids if t != done["task_id"])
    bob = (await workers(workers_client, 1))[0]
    work = await accepted(tasks_client, bob, project.id)
    assert work["task_id"] == other
    closed = await tasks_client.post(
        f"/v1/projects/{project.id}/close", headers=project.requester.headers
    )
    assert closed.status_code == 200
    resp = await dispose(tasks_client, project.requester, other)  # Bob still holds it
    assert (resp.status_code, resp.json()["code"]) == (409, "invalid_state")
    resp = await tasks_client.post(
        f"/v1/assignments/{work['assignment_id']}/return", headers=bob.headers
    )
    assert resp.status_code == 200
    resp = await dispose(tasks_client, project.requester, other)  # closed, nothing in flight
    assert resp.status_code == 200 and resp.json()["status"] == "open"
