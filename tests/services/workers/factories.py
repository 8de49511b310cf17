"""Test data for the workers service: qualification types through the API, decided assignments
straight into the shared tables (the tasks service owns the real path), and a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from services.workers.clock import get_now
from shared.ids import new_id
from tests.factories import Actor

DECIDED = ("submitted", "approved", "rejected")

SAMPLE_TEST: dict[str, Any] = {
    "questions": [
        {
            "id": "q1",
            "prompt": "Which one is a fruit?",
            "kind": "single_choice",
            "options": [{"id": "a", "text": "apple"}, {"id": "b", "text": "brick"}],
        },
        {
            "id": "q2",
            "prompt": "Pick the primes",
            "kind": "multiple_choice",
            "options": [
                {"id": "two", "text": "2"},
                {"id": "three", "text": "3"},
                {"id": "four", "text": "4"},
            ],
        },
        {"id": "q3", "prompt": "Capital of France?", "kind": "text"},
        {"id": "q4", "prompt": "6 x 7 = ?", "kind": "number"},
    ],
    "duration_seconds": 600,
}
SAMPLE_KEY: dict[str, Any] = {
    "answers": {
        "q1": {"correct": ["a"], "score": 1},
        "q2": {"correct": ["two", "three"], "score": 2},
        "q3": {"correct": "Paris", "score": 3},
        "q4": {"correct": 42, "score": 4},
    }
}
ALL_CORRECT: dict[str, Any] = {"q1": "a", "q2": ["three", "two"], "q3": "  pARIS ", "q4": 42.0}


async def create_type(client: httpx.AsyncClient, owner: Actor, **fields: Any) -> dict[str, Any]:
    body = {"name": f"qual-{new_id()}", "description": "a test type", **fields}
    resp = await client.post("/v1/qualification-types", json=body, headers=owner.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def start(client: httpx.AsyncClient, worker: Actor, type_id: str) -> httpx.Response:
    return await client.post(f"/v1/qualification-types/{type_id}/attempts", headers=worker.headers)


async def submit(
    client: httpx.AsyncClient, worker: Actor, attempt_id: str, answers: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/v1/qualification-attempts/{attempt_id}/submit",
        json={"answers": answers},
        headers=worker.headers,
    )


async def grant(
    client: httpx.AsyncClient, owner: Actor, type_id: str, worker_id: str, value: int
) -> httpx.Response:
    return await client.put(
        f"/v1/qualification-types/{type_id}/workers/{worker_id}",
        json={"value": value},
        headers=owner.headers,
    )


async def my_qualifications(client: httpx.AsyncClient, worker: Actor) -> dict[str, Any]:
    resp = await client.get("/v1/workers/me/qualifications", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    return {q["qualification_type_id"]: q for q in resp.json()["items"]}


async def insert_assignments(
    db: asyncpg.Pool, *, requester_id: str, worker_id: str, statuses: list[str]
) -> list[str]:
    """One published project with one task per assignment, written like the tasks service
    would; returns the assignment ids in the order of `statuses`."""
    project_id = new_id()
    ids: list[str] = []
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO projects (id, requester_id, status, title, task_type, reward_cents,
                   fee_cents, assignment_duration_seconds, lifetime_seconds, auto_approve_seconds)
               VALUES ($1, $2, 'published', 'stats fixture', 'sentiment',
                       10, 2, 600, 3600, 3600)""",
            project_id,
            requester_id,
        )
        has_open_slots = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM information_schema.columns
                              WHERE table_name = 'tasks' AND column_name = 'open_slots')"""
        )
        for status in statuses:
            task_id, assignment_id = new_id(), new_id()
            if has_open_slots:
                await conn.execute(
                    """INSERT INTO tasks (id, project_id, requester_id, input, max_assignments,
                           open_slots) VALUES ($1, $2, $3, '{}', 1, 0)""",
                    task_id,
                    project_id,
                    requester_id,
                )
            else:
                await conn.execute(
                    """INSERT INTO tasks (id, project_id, requester_id, input, max_assignments)
                       VALUES ($1, $2, $3, '{}', 1)""",
                    task_id,
                    project_id,
                    requester_id,
                )
            await conn.execute(
                """INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                       status, reward_cents, fee_cents, deadline, submitted_at)
                   VALUES ($1, $2, $3, $4, $5, $6::text, 10, 2, now() + interval '1 hour',
                           CASE WHEN $6::text IN ('submitted', 'approved', 'rejected')
                                THEN now() END)""",
                assignment_id,
                task_id,
                project_id,
                requester_id,
                worker_id,
                status,
            )
            ids.append(assignment_id)
    return ids


async def set_assignment_status(db: asyncpg.Pool, assignment_id: str, status: str) -> None:
    await db.execute("UPDATE assignments SET status = $2 WHERE id = $1", assignment_id, status)


async def true_counts(db: asyncpg.Pool, worker_id: str) -> dict[str, int]:
    """Counts straight from the assignments table: what the counters must always equal."""
    row = await db.fetchrow(
        """SELECT count(*) FILTER (WHERE status IN ('submitted', 'approved', 'rejected')) AS s,
                  count(*) FILTER (WHERE status = 'approved') AS a,
                  count(*) FILTER (WHERE status = 'rejected') AS r
           FROM assignments WHERE worker_id = $1""",
        worker_id,
    )
    return {"submitted_count": row["s"], "approved_count": row["a"], "rejected_count": row["r"]}


@dataclass
class FrozenClock:
    now: datetime

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@contextmanager
def frozen_clock(app: FastAPI, at: datetime | None = None) -> Iterator[FrozenClock]:
    """The workers app's clock (services.workers.clock.get_now) held still until moved."""
    clock = FrozenClock(at or datetime.now(UTC).replace(microsecond=0))
    app.dependency_overrides[get_now] = lambda: clock.now
    try:
        yield clock
    finally:
        app.dependency_overrides.pop(get_now, None)
