"""Test data for the payments service.

Money moves through the payments API (deposits with an API key, reservations and payouts with
the internal token, as the tasks service calls them). Projects, tasks and assignments belong to
the tasks service; bonuses and earnings only read them, so tests write those rows with SQL,
filling any NOT NULL column the tasks team adds later from its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from shared.ids import new_id
from tests.conftest import INTERNAL_TOKEN
from tests.factories import Actor

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}

_PLACEHOLDER_BY_TYPE: dict[str, Any] = {
    "text": "",
    "character varying": "",
    "integer": 0,
    "bigint": 0,
    "smallint": 0,
    "boolean": False,
    "jsonb": "{}",
    "json": "{}",
    "ARRAY": [],
}


async def insert_row(
    conn: asyncpg.Pool | asyncpg.Connection,
    table: str,
    values: dict[str, Any],
    *,
    if_present: dict[str, Any] | None = None,
) -> None:
    """INSERT with `values` (and `if_present` where the schema has those columns yet), plus a
    type-shaped placeholder for other required columns."""
    columns = await conn.fetch(
        """
        SELECT column_name, data_type,
               is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' AS required
        FROM information_schema.columns
        WHERE table_name = $1 AND table_schema = current_schema()
        """,
        table,
    )
    types = {c["column_name"]: c["data_type"] for c in columns}
    row = dict(values)
    row.update({k: v for k, v in (if_present or {}).items() if k in types})
    for col in columns:
        name, data_type = col["column_name"], col["data_type"]
        if name in row or not col["required"]:
            continue
        if data_type.startswith("timestamp"):
            row[name] = datetime.now(UTC)
        elif data_type in _PLACEHOLDER_BY_TYPE:
            row[name] = _PLACEHOLDER_BY_TYPE[data_type]
        else:
            raise AssertionError(f"no placeholder for {table}.{name} ({data_type})")
    names = list(row)
    params = [
        f"${i}::jsonb" if types.get(name) in {"jsonb", "json"} else f"${i}"
        for i, name in enumerate(names, start=1)
    ]
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(params)})", *row.values()
    )


@dataclass
class Work:
    project_id: str
    task_id: str
    assignment_id: str
    reward_cents: int


async def create_project(
    db: asyncpg.Pool,
    requester_id: str,
    *,
    title: str = "Label cats",
    reward_cents: int = 50,
    fee_cents: int = 10,
    assignments_per_task: int = 1,
) -> str:
    project_id = new_id()
    await insert_row(
        db,
        "projects",
        {
            "id": project_id,
            "requester_id": requester_id,
            "status": "published",
            "title": title,
            "task_type": "sentiment",
            "reward_cents": reward_cents,
            "fee_cents": fee_cents,
            "assignments_per_task": assignments_per_task,
            "assignment_duration_seconds": 600,
            "lifetime_seconds": 86_400,
            "auto_approve_seconds": 3_600,
        },
    )
    return project_id


async def create_assignment(
    db: asyncpg.Pool,
    *,
    requester_id: str,
    worker_id: str,
    project_id: str | None = None,
    status: str = "submitted",
    reward_cents: int = 50,
    fee_cents: int = 10,
    accepted_at: datetime | None = None,
    work_seconds: int = 300,
) -> Work:
    """An assignment row (and its project and task when not given), as the tasks service would
    leave it: `submitted_at` is `work_seconds` after `accepted_at` unless still accepted."""
    if project_id is None:
        project_id = await create_project(
            db, requester_id, reward_cents=reward_cents, fee_cents=fee_cents
        )
    task_id = new_id()
    await insert_row(
        db,
        "tasks",
        {
            "id": task_id,
            "project_id": project_id,
            "requester_id": requester_id,
            "input": '{"text": "hello"}',
            "max_assignments": 1,
        },
        if_present={"open_slots": 0},
    )
    accepted_at = accepted_at or datetime.now(UTC) - timedelta(seconds=work_seconds + 60)
    submitted = status not in {"accepted", "returned", "expired"}
    assignment_id = new_id()
    await insert_row(
        db,
        "assignments",
        {
            "id": assignment_id,
            "task_id": task_id,
            "project_id": project_id,
            "requester_id": requester_id,
            "worker_id": worker_id,
            "status": status,
            "reward_cents": reward_cents,
            "fee_cents": fee_cents,
            "accepted_at": accepted_at,
            "deadline": accepted_at + timedelta(hours=1),
            "submitted_at": accepted_at + timedelta(seconds=work_seconds) if submitted else None,
        },
    )
    return Work(project_id, task_id, assignment_id, reward_cents)


async def deposit(client: httpx.AsyncClient, requester: Actor, amount: str) -> dict:
    resp = await client.post("/v1/deposits", json={"amount": amount}, headers=requester.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def reserve(
    client: httpx.AsyncClient,
    *,
    requester_id: str,
    project_id: str,
    amount_cents: int,
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        "/internal/reservations",
        json={
            "key": key or f"publish:{project_id}:{new_id()}",
            "requester_id": requester_id,
            "project_id": project_id,
            "amount_cents": amount_cents,
        },
        headers=INTERNAL,
    )


def payout_body(
    *,
    requester_id: str,
    worker_id: str,
    project_id: str,
    assignment_id: str | None = None,
    reward_cents: int,
    fee_cents: int,
    source: str = "reserved",
    task_id: str | None = None,
) -> dict[str, Any]:
    assignment_id = assignment_id or new_id()
    return {
        "key": f"pay:{assignment_id}",
        "requester_id": requester_id,
        "project_id": project_id,
        "task_id": task_id or new_id(),
        "assignment_id": assignment_id,
        "worker_id": worker_id,
        "reward_cents": reward_cents,
        "fee_cents": fee_cents,
        "source": source,
    }


async def pay(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/internal/payouts", json=body, headers=INTERNAL)


async def fund_worker(
    client: httpx.AsyncClient,
    requester: Actor,
    worker: Actor,
    *,
    reward_cents: int,
    fee_cents: int = 1,
) -> None:
    """Give `worker` `reward_cents` of available money the way approved work does."""
    total = reward_cents + fee_cents
    await deposit(client, requester, f"{total // 100}.{total % 100:02d}")
    project_id = new_id()
    resp = await reserve(
        client, requester_id=requester.id, project_id=project_id, amount_cents=total
    )
    assert resp.status_code == 201, resp.text
    body = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=project_id,
        reward_cents=reward_cents,
        fee_cents=fee_cents,
    )
    resp = await pay(client, body)
    assert resp.status_code == 201, resp.text


async def balance(client: httpx.AsyncClient, actor: Actor) -> dict[str, str]:
    """The caller's amounts; the `kind` discriminator is checked here and left out."""
    resp = await client.get("/v1/balance", headers=actor.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.pop("kind") == actor.kind, body
    return body


async def ledger_check(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/internal/ledger/check", headers=INTERNAL)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def assert_ledger_ok(client: httpx.AsyncClient) -> dict[str, Any]:
    report = await ledger_check(client)
    assert report["ok"], report
    assert report["total_debits"] == report["total_credits"]
    return report


def cents(money: str) -> int:
    """Parse a (possibly signed) money string from a response."""
    sign = -1 if money.startswith("-") else 1
    whole, _, frac = money.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))
