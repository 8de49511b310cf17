"""Factories for the projects side's tests: projects, uploads, money, and assignments.

Everything goes through the public API except `insert_assignment`, which writes an assignment
row the way the queue side's accept/submit would (a claimed slot plus the answer), so results
and discovery can be tested with exact answer mixes and timings.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from tests.factories import Actor

PROJECT_DEFAULTS: dict[str, Any] = {
    "title": "Label animal photos",
    "description": "Pick the animal in each photo.",
    "instructions": "# Guidelines\nChoose the animal you see.",
    "keywords": ["image", "animals"],
    "task_type": "classification",
    "labels": ["cat", "dog", "bird"],
    "reward": "0.25",
    "assignments_per_task": 3,
    "assignment_duration_seconds": 600,
    "lifetime_seconds": 86_400,
}


def project_body(**overrides: Any) -> dict[str, Any]:
    body = {**PROJECT_DEFAULTS, **overrides}
    return {k: v for k, v in body.items() if v is not None}


async def create_project(
    tasks_client: httpx.AsyncClient, requester: Actor, **overrides: Any
) -> dict[str, Any]:
    resp = await tasks_client.post(
        "/v1/projects", json=project_body(**overrides), headers=requester.headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def add_tasks(
    tasks_client: httpx.AsyncClient,
    requester: Actor,
    project_id: str,
    tasks: list[dict[str, Any]],
) -> dict[str, Any]:
    resp = await tasks_client.post(
        f"/v1/projects/{project_id}/tasks", json={"tasks": tasks}, headers=requester.headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def image_tasks(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [{"input": {"image_url": f"https://img.example/{start + i}.jpg"}} for i in range(n)]


async def deposit(payments_client: httpx.AsyncClient, requester: Actor, amount: str) -> None:
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": amount}, headers=requester.headers
    )
    assert resp.status_code == 201, resp.text


async def balance(payments_client: httpx.AsyncClient, requester: Actor) -> dict[str, str]:
    resp = await payments_client.get("/v1/balance", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.pop("kind") == "requester", body
    return body


async def publish(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str
) -> dict[str, Any]:
    resp = await tasks_client.post(f"/v1/projects/{project_id}/publish", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def funded_published_project(
    tasks_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    requester: Actor,
    *,
    tasks: list[dict[str, Any]],
    funds: str = "1000.00",
    **overrides: Any,
) -> dict[str, Any]:
    project = await create_project(tasks_client, requester, **overrides)
    await add_tasks(tasks_client, requester, project["id"], tasks)
    await deposit(payments_client, requester, funds)
    return await publish(tasks_client, requester, project["id"])


async def task_ids(db: asyncpg.Pool, project_id: str) -> list[str]:
    rows = await db.fetch("SELECT id FROM tasks WHERE project_id = $1 ORDER BY id", project_id)
    return [r["id"] for r in rows]


async def insert_assignment(
    db: asyncpg.Pool,
    *,
    task_id: str,
    worker_id: str,
    status: str,
    answer: Any = None,
    working_seconds: float = 60.0,
    review_seconds: float | None = None,
) -> str:
    """An assignment as the queue side leaves it: the slot is claimed from the task (and given
    back for returned/expired/rejected ones), timings are set relative to now."""
    assignment_id = "A" + uuid.uuid4().hex[:25].upper()
    now = datetime.now(UTC)
    accepted_at = now - timedelta(seconds=working_seconds + (review_seconds or 0) + 1)
    submitted_at = None
    reviewed_at = None
    if status in ("submitted", "approved", "rejected"):
        submitted_at = accepted_at + timedelta(seconds=working_seconds)
    if status in ("approved", "rejected"):
        reviewed_at = submitted_at + timedelta(seconds=review_seconds or 0)  # type: ignore[operator]
    async with db.acquire() as conn, conn.transaction():
        task = await conn.fetchrow(
            "SELECT project_id, requester_id FROM tasks WHERE id = $1 FOR UPDATE", task_id
        )
        money = await conn.fetchrow(
            "SELECT reward_cents, fee_cents FROM projects WHERE id = $1", task["project_id"]
        )
        await conn.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id, status,
                answer, reward_cents, fee_cents, accepted_at, deadline, submitted_at, reviewed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10::timestamptz,
                $10::timestamptz + interval '1 hour',
                $11, $12)
            """,
            assignment_id,
            task_id,
            task["project_id"],
            task["requester_id"],
            worker_id,
            status,
            None if answer is None else orjson.dumps(answer).decode(),
            money["reward_cents"],
            money["fee_cents"],
            accepted_at,
            submitted_at,
            reviewed_at,
        )
        if status in ("accepted", "submitted", "approved"):
            await conn.execute(
                "UPDATE tasks SET open_slots = open_slots - 1 WHERE id = $1", task_id
            )
    return assignment_id
