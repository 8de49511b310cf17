"""A retried upload never holds the money twice, even when the first try's reservation acted."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import httpx

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester
from tests.fixtures.payments import balance
from tests.fixtures.projects import funded_published_project, image_tasks


async def test_retry_after_a_lost_commit_replays_the_reservation(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client, payments_client, requester, tasks=image_tasks(2), funds="100.00"
    )
    slot_price = int((Decimal(project["reward"]) + Decimal(project["fee_per_assignment"])) * 100)
    amount = 3 * project["assignments_per_task"] * slot_price  # three tasks' slots
    key = "upload-batch-7"
    # The first try reserved 3 slots at payments, then its own commit failed: no tasks exist.
    lost = await payments_client.post(
        "/internal/reservations",
        headers={"X-Internal-Token": INTERNAL_TOKEN},
        json={
            "key": f"add-tasks:{project['id']}:{hashlib.sha256(key.encode()).hexdigest()[:32]}",
            "requester_id": requester.id,
            "project_id": project["id"],
            "amount_cents": amount,
        },
    )
    assert lost.status_code == 201, lost.text
    before = await balance(payments_client, requester)

    retry = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": image_tasks(3, start=10)},
        headers={**requester.headers, "Idempotency-Key": key},
    )
    assert retry.status_code == 201, retry.text
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project["id"]) == 5
    assert await balance(payments_client, requester) == before  # replayed, not reserved again
