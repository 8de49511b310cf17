"""Test data for the queue side (accept, submit, review, gold, outbox), built through the API.

A published project is created, filled, funded and published with the projects side's public
endpoints and a real deposit at the payments service, so every test also exercises the money the
queue moves (reservations made at publish, payouts and releases through the outbox).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest

from services.tasks.assignments import service as assignments_service
from shared.money import format_cents
from tests.factories import Actor, create_requester, create_worker
from tests.services.payments.factories import INTERNAL, assert_ledger_ok, cents, deposit

__all__ = ["INTERNAL", "assert_ledger_ok", "deposit"]

PROJECT_DEFAULTS: dict[str, Any] = {
    "title": "Is this a cat?",
    "description": "Label photos.",
    "instructions": "Pick the animal you see.",
    "keywords": ["image"],
    "task_type": "classification",
    "labels": ["cat", "dog"],
    "reward": "0.10",
    "assignments_per_task": 1,
    "assignment_duration_seconds": 600,
    "lifetime_seconds": 86_400,
    "auto_approve_seconds": 86_400,
}


@dataclass
class Published:
    requester: Actor
    project: dict[str, Any]
    task_ids: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.project["id"]

    @property
    def slot_cents(self) -> int:
        return cents(self.project["reward"]) + cents(self.project["fee_per_assignment"])


def cat_tasks(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"input": {"image_url": f"https://img.example/{i}.jpg"}, **extra} for i in range(n)]


async def balance(payments_client: httpx.AsyncClient, actor: Actor) -> dict[str, int]:
    """The caller's balance in cents."""
    resp = await payments_client.get("/v1/balance", headers=actor.headers)
    assert resp.status_code == 200, resp.text
    return {k: cents(v) for k, v in resp.json().items() if isinstance(v, str) and k != "kind"}


async def published_project(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    *,
    tasks: list[dict[str, Any]],
    requester: Actor | None = None,
    extra_funds_cents: int = 0,
    **overrides: Any,
) -> Published:
    """A published project with `tasks`, its slots reserved from an exact deposit (plus
    `extra_funds_cents` left available)."""
    requester = requester or await create_requester(workers_client)
    body = {**PROJECT_DEFAULTS, **overrides}
    resp = await tasks_client.post("/v1/projects", json=body, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    project = resp.json()
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks", json={"tasks": tasks}, headers=requester.headers
    )
    assert resp.status_code == 201, resp.text
    task_ids = resp.json()["task_ids"]
    slots = sum(t.get("max_assignments") or project["assignments_per_task"] for t in tasks)
    slot_cents = cents(project["reward"]) + cents(project["fee_per_assignment"])
    await deposit(payments_client, requester, format_cents(slots * slot_cents + extra_funds_cents))
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/publish", headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    return Published(requester=requester, project=resp.json(), task_ids=task_ids)


async def workers(workers_client: httpx.AsyncClient, n: int, **fields: Any) -> list[Actor]:
    return list(await asyncio.gather(*(create_worker(workers_client, **fields) for _ in range(n))))


async def accept(
    tasks_client: httpx.AsyncClient, worker: Actor, project_id: str, **kw: Any
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/work/projects/{project_id}/accept", headers=worker.headers, **kw
    )


async def accepted(tasks_client: httpx.AsyncClient, worker: Actor, project_id: str) -> dict:
    resp = await accept(tasks_client, worker, project_id)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def submit(
    tasks_client: httpx.AsyncClient, worker: Actor, assignment_id: str, answer: Any
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/submit", json={"answer": answer}, headers=worker.headers
    )


async def submitted(
    tasks_client: httpx.AsyncClient,
    worker: Actor,
    project_id: str,
    answer: Any | None = None,
) -> dict:
    """Accept the next task and submit an answer to it; returns the submitted assignment."""
    work = await accepted(tasks_client, worker, project_id)
    resp = await submit(tasks_client, worker, work["assignment_id"], answer or {"label": "cat"})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def approve(
    tasks_client: httpx.AsyncClient, requester: Actor, assignment_id: str, **body: Any
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/approve", json=body or None, headers=requester.headers
    )


async def reject(
    tasks_client: httpx.AsyncClient,
    requester: Actor,
    assignment_id: str,
    feedback: str = "The label does not match the photo.",
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/reject",
        json={"feedback": feedback},
        headers=requester.headers,
    )


async def deliver_outbox(apps: dict) -> None:
    """One delivery pass of the in-process tasks app's deliverer (tests need not wait for the
    next poll; the live tasks process may deliver the same rows, which is harmless)."""
    await apps["tasks"].state.outbox_deliverer.deliver_due()


async def wait_delivered(db: asyncpg.Pool, keys: list[str], apps: dict, within: float = 10.0):
    """Until every message with these keys is acknowledged by payments."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await deliver_outbox(apps)
        rows = await db.fetch(
            "SELECT key, delivered_at, parked_at, last_error FROM outbox WHERE key = ANY($1)",
            keys,
        )
        if len(rows) == len(keys) and all(r["delivered_at"] is not None for r in rows):
            return rows
        assert not any(r["parked_at"] for r in rows), [dict(r) for r in rows]
        if loop.time() > deadline:
            raise AssertionError(f"not delivered in {within}s: {[dict(r) for r in rows]}")
        await asyncio.sleep(0.05)


async def open_slots(db: asyncpg.Pool, project_id: str) -> int:
    return await db.fetchval(
        "SELECT coalesce(sum(open_slots), 0) FROM tasks WHERE project_id = $1", project_id
    )


async def held(db: asyncpg.Pool, project_id: str) -> int:
    """Cents the payments service holds for the project's slots (reserved, not yet paid or
    released)."""
    return await db.fetchval(
        "SELECT coalesce(sum(held_cents), 0) FROM project_holds WHERE project_id = $1", project_id
    )


# --------------------------------------------------------------------------- hot-path probes


def start_claims_at(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    """Accept's random first rank, fixed (only the service module's view of `random`)."""
    monkeypatch.setattr(
        assignments_service, "random", SimpleNamespace(randint=lambda low, high: rank)
    )


class StatementRecorder:
    """An asyncpg connection that records the text of each statement it is asked to run."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            return attribute

        async def recorded(query: str, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(query)
            return await attribute(query, *args, **kwargs)

        return recorded
