"""What the fair review tests share: submitted work in bulk, the worker's standing as the
workers service shows it (profile stats and system.approval_rate), and the tasks app's clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.eligibility import APPROVAL_RATE_TYPE_ID
from tests.fixtures.accounts import Actor
from tests.fixtures.tasks import submitted

REJECTION = "The label does not match the photo."


async def submit_many(
    tasks_client: httpx.AsyncClient, worker: Actor, project_id: str, n: int
) -> list[str]:
    """`n` submitted assignments of `worker` in the project (one per task), in order."""
    return [(await submitted(tasks_client, worker, project_id))["id"] for _ in range(n)]


async def standing(workers_client: httpx.AsyncClient, worker: Actor) -> dict[str, Any]:
    """The worker's counters and approval rate (GET /v1/workers/me) with system.approval_rate
    (GET /v1/workers/me/qualifications): the figures the rejection cap must move exactly."""
    me = await workers_client.get("/v1/workers/me", headers=worker.headers)
    assert me.status_code == 200, me.text
    quals = await workers_client.get(
        "/v1/workers/me/qualifications", params={"limit": 200}, headers=worker.headers
    )
    assert quals.status_code == 200, quals.text
    system = {q["qualification_type_id"]: q["value"] for q in quals.json()["items"]}
    body = me.json()
    return {
        "approved": body["approved_count"],
        "rejected": body["rejected_count"],
        "approval_rate": body["approval_rate"],
        "system_approval_rate": system[APPROVAL_RATE_TYPE_ID],
    }


def expected(approved: int, rejected: int) -> dict[str, Any]:
    decided = approved + rejected
    return {
        "approved": approved,
        "rejected": rejected,
        "approval_rate": round(100 * approved / decided, 2) if decided else None,
        # system.approval_rate: whole percent rounded down, 100 before 10 decisions
        "system_approval_rate": 100 if decided < 10 else approved * 100 // decided,
    }


async def review(
    tasks_client: httpx.AsyncClient,
    requester: Actor,
    *,
    approve: list[str] = (),  # type: ignore[assignment]
    reject: list[str] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    body = {
        "approve": [{"id": i} for i in approve],
        "reject": [{"id": i, "feedback": REJECTION} for i in reject],
    }
    resp = await tasks_client.post("/v1/assignments/review", json=body, headers=requester.headers)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert all(r["status"] == "ok" for r in results), results
    return results


@contextmanager
def clock_at(app: Any, moment: datetime) -> Iterator[None]:
    """The tasks app's clock (services/tasks/clock.py) stands at `moment` and moves with time."""
    start = datetime.now(UTC)
    before = app.state.clock
    app.state.clock = lambda: moment + (datetime.now(UTC) - start)
    try:
        yield
    finally:
        app.state.clock = before


def tomorrow_at_noon() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, 12, tzinfo=UTC) + timedelta(days=1)
