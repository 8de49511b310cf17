"""The security suite's shared data: one "world" of objects owned by requester A and worker W,
plus a foreign requester B and a foreign worker V who must never reach any of it.

Everything is built through the public API (and the in-process outbox deliverer for the
payout), so the ids are the real ones a client would hold. The world is built once per run:
the tests only read it or call it as a foreigner (which must change nothing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.tasks import (
    accepted,
    approve,
    cat_tasks,
    published_project,
    submit,
    wait_delivered,
)

SAMPLE_TEST = {
    "questions": [
        {
            "id": "q1",
            "prompt": "Which one is a fruit?",
            "kind": "single_choice",
            "options": [{"id": "a", "text": "apple"}, {"id": "b", "text": "brick"}],
        }
    ],
    "duration_seconds": 600,
}


@dataclass
class World:
    requester: Actor  # A: owns every requester-side object below
    worker: Actor  # W: owns every worker-side object below
    foreign_requester: Actor  # B
    foreign_worker: Actor  # V
    project_id: str  # published, funded
    draft_project_id: str  # never published: invisible to every worker
    task_ids: list[str]
    approved_assignment_id: str  # paid to W
    submitted_assignment_id: str  # awaiting A's review
    accepted_assignment_id: str  # W is still working on it
    type_id: str  # active, with a test and no answer key
    inactive_type_id: str  # invisible to everyone but A
    attempt_id: str  # W's submitted attempt at type_id
    request_id: str  # the pending request that attempt made
    requester_key_id: str  # A's second API key
    worker_key_id: str  # W's second API key
    bonus_id: str
    withdrawal_id: str
    deposit_id: str
    aggregation_run_id: str  # A's aggregation run of project_id
    extra_ids: dict[str, str] = field(default_factory=dict)

    def private_ids(self) -> dict[str, str]:
        """Every id that only A or W (or both) may ever see, by what it is."""
        return {
            "draft_project_id": self.draft_project_id,
            **{f"task_id[{i}]": t for i, t in enumerate(self.task_ids)},
            "approved_assignment_id": self.approved_assignment_id,
            "submitted_assignment_id": self.submitted_assignment_id,
            "accepted_assignment_id": self.accepted_assignment_id,
            "inactive_type_id": self.inactive_type_id,
            "attempt_id": self.attempt_id,
            "request_id": self.request_id,
            "requester_key_id": self.requester_key_id,
            "worker_key_id": self.worker_key_id,
            "bonus_id": self.bonus_id,
            "withdrawal_id": self.withdrawal_id,
            "deposit_id": self.deposit_id,
            "aggregation_run_id": self.aggregation_run_id,
            "worker_id": self.worker.id,
            "requester_id": self.requester.id,
            "project_id": self.project_id,
            "type_id": self.type_id,
            **{k: v for k, v in self.extra_ids.items() if k in ("message_id", "access_key_id")},
        }


async def _ok(resp: httpx.Response, status: int = 200) -> dict:
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
    return resp.json() if resp.content else {}


async def _new_key_id(workers_client: httpx.AsyncClient, actor: Actor) -> str:
    resp = await workers_client.post(
        "/v1/accounts/me/api-keys", json={"name": "second"}, headers=actor.headers
    )
    return (await _ok(resp, 201))["id"]


async def _until_withdrawal_paid(db: asyncpg.Pool, withdrawal_id: str) -> None:
    """The test payout provider pays after a delay; wait, so the world is still afterwards."""
    for _ in range(200):
        if await db.fetchval("SELECT status FROM withdrawals WHERE id = $1", withdrawal_id) == (
            "paid"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the withdrawal was not paid within 10 s")


@pytest.fixture(scope="session")
async def world(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> World:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    foreign_requester = await create_requester(workers_client)
    foreign_worker = await create_worker(workers_client)

    # Qualifications: an active type with a test (no key: submissions wait for review), an
    # inactive one, W's attempt and the pending request it made, a direct grant.
    resp = await workers_client.post(
        "/v1/qualification-types",
        json={"name": "sec-active", "description": "d", "test": SAMPLE_TEST},
        headers=requester.headers,
    )
    type_id = (await _ok(resp, 201))["id"]
    resp = await workers_client.post(
        "/v1/qualification-types",
        json={"name": "sec-inactive", "description": "d", "status": "inactive"},
        headers=requester.headers,
    )
    inactive_type_id = (await _ok(resp, 201))["id"]
    resp = await workers_client.post(
        f"/v1/qualification-types/{type_id}/attempts", headers=worker.headers
    )
    attempt_id = (await _ok(resp, 201))["attempt_id"]
    resp = await workers_client.post(
        f"/v1/qualification-attempts/{attempt_id}/submit",
        json={"answers": {"q1": "a"}},
        headers=worker.headers,
    )
    assert (await _ok(resp))["status"] == "pending"
    resp = await workers_client.get(
        f"/v1/qualification-types/{type_id}/requests", headers=requester.headers
    )
    [request] = (await _ok(resp))["items"]
    resp = await workers_client.put(
        f"/v1/qualification-types/{type_id}/workers/{worker.id}",
        json={"value": 70},
        headers=requester.headers,
    )
    assert resp.status_code in (200, 201), resp.text

    # Work: a published project (reward 1.50 so W can withdraw), three of W's assignments in
    # three states, a draft project, a bonus and a withdrawal.
    published = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(4),
        requester=requester,
        extra_funds_cents=10_000,
        reward="1.50",
    )
    approved_work = await accepted(tasks_client, worker, published.id)
    await _ok(await submit(tasks_client, worker, approved_work["assignment_id"], {"label": "cat"}))
    await _ok(await approve(tasks_client, requester, approved_work["assignment_id"]))
    await wait_delivered(db, [f"pay:{approved_work['assignment_id']}"], apps)
    submitted_work = await accepted(tasks_client, worker, published.id)
    await _ok(await submit(tasks_client, worker, submitted_work["assignment_id"], {"label": "dog"}))
    accepted_work = await accepted(tasks_client, worker, published.id)

    resp = await tasks_client.post(
        "/v1/projects",
        json={
            "title": "Draft",
            "task_type": "sentiment",
            "reward": "0.05",
            "assignment_duration_seconds": 60,
            "lifetime_seconds": 3600,
        },
        headers=requester.headers,
    )
    draft_project_id = (await _ok(resp, 201))["id"]

    resp = await payments_client.post(
        "/v1/bonuses",
        json={
            "assignment_id": approved_work["assignment_id"],
            "amount": "0.50",
            "reason": "Great work",
        },
        headers=requester.headers,
    )
    bonus_id = (await _ok(resp, 201))["id"]
    resp = await payments_client.post(
        "/v1/withdrawals", json={"amount": "1.00"}, headers=worker.headers
    )
    withdrawal_id = (await _ok(resp, 201))["id"]
    resp = await payments_client.post(
        "/v1/deposits", json={"amount": "1.00"}, headers=requester.headers
    )
    deposit_id = (await _ok(resp, 201))["id"]
    await _until_withdrawal_paid(db, withdrawal_id)

    # Hourly work: A's hourly project, W's ended work session in it and the week's timesheet.
    from tests.fixtures.hourly import hourly_project

    hourly = await hourly_project(
        tasks_client, workers_client, payments_client, tasks=1, requester=requester, budget_hours=1
    )
    resp = await tasks_client.post(
        f"/v1/work/projects/{hourly.id}/sessions", headers=worker.headers
    )
    session_id = (await _ok(resp, 201))["id"]
    resp = await tasks_client.post(f"/v1/work/sessions/{session_id}/end", headers=worker.headers)
    timesheet_id = (await _ok(resp))["timesheet_id"]
    # An aggregation run of A's project (the 202's status URL names it), finished, so the
    # world stays still afterwards.
    resp = await tasks_client.get(
        f"/v1/projects/{published.id}/results",
        params={"aggregation": "majority"},
        headers=requester.headers,
    )
    assert resp.status_code in (200, 202), resp.text
    aggregation_run_id = await db.fetchval(
        "SELECT id FROM aggregation_runs WHERE project_id = $1", published.id
    )
    for _ in range(1200):
        status = await db.fetchval(
            "SELECT status FROM aggregation_runs WHERE id = $1", aggregation_run_id
        )
        if status != "running":
            break
        await asyncio.sleep(0.1)
    assert status == "done", status

    # A blocks W last: the block must not stop W's assignments above from being made.
    resp = await workers_client.post(
        "/v1/blocks", json={"worker_id": worker.id, "reason": "test"}, headers=requester.headers
    )
    await _ok(resp, 201)

    # A writes to W (A approved W's work above); W's copy is a private object of W's.
    resp = await workers_client.post(
        "/v1/workers/messages",
        json={"worker_ids": [worker.id], "subject": "Thanks", "body": "Good work."},
        headers=requester.headers,
    )
    assert (await _ok(resp, 201))["sent"] == [worker.id]
    resp = await workers_client.get("/v1/workers/me/messages", headers=worker.headers)
    message_id = (await _ok(resp, 200))["items"][0]["id"]

    # A's MTurk-style credentials (the door's keys): a private object of A's.
    resp = await workers_client.post("/v1/accounts/me/mturk-credentials", headers=requester.headers)
    access_key_id = (await _ok(resp, 201))["access_key_id"]

    world = World(
        requester=requester,
        worker=worker,
        foreign_requester=foreign_requester,
        foreign_worker=foreign_worker,
        project_id=published.id,
        draft_project_id=draft_project_id,
        task_ids=published.task_ids,
        approved_assignment_id=approved_work["assignment_id"],
        submitted_assignment_id=submitted_work["assignment_id"],
        accepted_assignment_id=accepted_work["assignment_id"],
        type_id=type_id,
        inactive_type_id=inactive_type_id,
        attempt_id=attempt_id,
        request_id=request["id"],
        requester_key_id=await _new_key_id(workers_client, requester),
        worker_key_id=await _new_key_id(workers_client, worker),
        bonus_id=bonus_id,
        withdrawal_id=withdrawal_id,
        deposit_id=deposit_id,
        aggregation_run_id=aggregation_run_id,
    )
    world.extra_ids.update(
        hourly_project_id=hourly.id,
        session_id=session_id,
        timesheet_id=timesheet_id,
        message_id=message_id,
        access_key_id=access_key_id,
    )
    return world


@pytest.fixture
def clients(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> dict[str, httpx.AsyncClient]:
    return {"tasks": tasks_client, "workers": workers_client, "payments": payments_client}


# Tables that background loops rewrite without any request (their meaning stays the same): the
# snapshot reads them through a view of what they mean instead of row by row.
_BACKGROUND_VIEWS = {
    # the stats compactor folds delta rows into the counters: compare the per-worker sums
    "worker_stats": """SELECT worker_id, sum(s) s, sum(a) a, sum(r) r FROM (
            SELECT worker_id, submitted_count s, approved_count a, rejected_count r
            FROM worker_stats
            UNION ALL
            SELECT worker_id, submitted, approved, rejected FROM worker_stats_deltas
        ) u GROUP BY worker_id""",
    "worker_stats_deltas": None,  # in the view above
    # the outbox deliverer stamps attempts and delivery times: compare which messages exist
    "outbox": "SELECT key FROM outbox",
    # a key's last use is stamped by authentication itself (at most once a minute), before the
    # route decides anything: on the hot paths it is not part of the request's transaction
    "api_keys": """SELECT id, account_id, key_hash, prefix, name, created_at, revoked_at
        FROM api_keys""",
    # every request is counted toward its rate limits, refused ones included (that is what a
    # limit is for): the counters are traffic accounting, not state a request may not change
    "rate_limit_counters": None,
    # the scorecard sweep refreshes each requester's figures from the tables compared above
    # (and stamps when): a derived cache, not state a request writes
    "requester_scorecards": None,
    # the levels loop drains the queue of workers whose figures changed and recomputes their
    # level (and its history) from the tables compared above: derived, written without a request
    "worker_level_queue": None,
    "worker_levels": None,
    "worker_level_changes": None,
}


async def db_snapshot(db: asyncpg.Pool) -> dict[str, str]:
    """An md5 of every row of every table: equal snapshots mean the database did not change,
    whatever the row (not only the counts)."""
    tables = await db.fetch(
        """SELECT table_name FROM information_schema.tables
           WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
             AND table_name <> 'alembic_version'"""
    )
    out: dict[str, str] = {}
    async with db.acquire() as conn:
        for row in tables:
            name = row["table_name"]
            source = _BACKGROUND_VIEWS.get(name, f'SELECT * FROM "{name}"')
            if source is None:
                continue
            out[name] = await conn.fetchval(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM ({source}) t"
            )
    return out
