"""The owner's task reads: assignments inside tasks, gold shown to the owner only, roles."""

from __future__ import annotations

import httpx

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.projects import (
    funded_published_project,
    insert_assignment,
    task_ids,
)


async def test_tasks_carry_their_assignments(
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
        tasks=[{"input": {"n": 1}, "gold_answer": {"label": "cat"}}, {"input": {"n": 2}}],
    )
    gold_id, plain_id = await task_ids(db, project["id"])
    worker = await create_worker(workers_client)
    assignment_id = await insert_assignment(
        db, task_id=gold_id, worker_id=worker.id, status="submitted", answer={"label": "dog"}
    )
    task = (await tasks_client.get(f"/v1/tasks/{gold_id}", headers=requester.headers)).json()
    assert task["is_gold"] is True and task["gold_answer"] == {"label": "cat"}
    assert task["open_slots"] == 2 and task["max_assignments"] == 3
    assert task["expires_at"] is not None
    [assignment] = task["assignments"]
    assert assignment["id"] == assignment_id and assignment["worker_id"] == worker.id
    assert assignment["status"] == "submitted" and assignment["answer"] == {"label": "dog"}
    assert assignment["reward"] == "0.25" and assignment["submitted_at"] is not None
    page = (
        await tasks_client.get(f"/v1/projects/{project['id']}/tasks", headers=requester.headers)
    ).json()
    by_id = {t["id"]: t for t in page["items"]}
    assert [a["id"] for a in by_id[gold_id]["assignments"]] == [assignment_id]
    assert by_id[plain_id]["assignments"] == [] and by_id[plain_id]["gold_answer"] is None
    # a worker (even the one who answered) cannot read tasks through the owner's endpoints
    assert (
        await tasks_client.get(f"/v1/tasks/{gold_id}", headers=worker.headers)
    ).status_code == 403
    other = await create_requester(workers_client)
    assert (
        await tasks_client.get(f"/v1/tasks/{gold_id}", headers=other.headers)
    ).status_code == 404
    assert (await tasks_client.get("/v1/tasks/NOPE", headers=requester.headers)).status_code == 404
