"""`GET /v1/earnings`: totals, by day and project, hours from accept to submit, hourly rate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    assert_ledger_ok,
    create_assignment,
    create_project,
    deposit,
    pay,
    payout_body,
)


async def _backdated_payout(
    db: asyncpg.Pool, *, requester_id: str, worker_id: str, work, fee_cents: int, at: datetime
) -> None:
    """A payout from `available` posted `at` a past moment, exactly as the service posts one
    (balances, entries, spent), since ledger rows cannot be moved in time afterwards."""
    total = work.reward_cents + fee_cents
    tx_id = new_id()
    legs = [
        (f"requester:{requester_id}:available", "requester_available", requester_id, -total),
        (f"worker:{worker_id}:available", "worker_available", worker_id, work.reward_cents),
        ("platform:revenue:0", "platform_revenue", None, fee_cents),
    ]
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO ledger_transactions (id, kind, key, requester_id, worker_id, project_id,
                   task_id, assignment_id, amount_cents, fee_cents, reference, created_at)
               VALUES ($1, 'payout', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            tx_id,
            f"pay:{work.assignment_id}",
            requester_id,
            worker_id,
            work.project_id,
            work.task_id,
            work.assignment_id,
            work.reward_cents,
            fee_cents,
            f"assignment:{work.assignment_id}",
            at,
        )
        for account_id, kind, owner, amount in legs:
            await conn.execute(
                """INSERT INTO ledger_accounts (id, kind, owner_id) VALUES ($1, $2, $3)
                   ON CONFLICT (id) DO NOTHING""",
                account_id,
                kind,
                owner,
            )
            after = await conn.fetchval(
                """UPDATE ledger_accounts SET balance_cents = balance_cents + $2
                   WHERE id = $1 RETURNING balance_cents""",
                account_id,
                amount,
            )
            await conn.execute(
                """INSERT INTO ledger_entries (transaction_id, account_id, kind, amount_cents,
                       balance_after_cents, created_at) VALUES ($1, $2, 'payout', $3, $4, $5)""",
                tx_id,
                account_id,
                amount,
                after,
                at,
            )
        await conn.execute(
            """INSERT INTO project_holds AS h (requester_id, project_id, spent_cents)
               VALUES ($1, $2, $3) ON CONFLICT (requester_id, project_id)
               DO UPDATE SET spent_cents = h.spent_cents + $3""",
            requester_id,
            work.project_id,
            total,
        )


async def test_earnings_by_day_and_project_with_hours_and_rate(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    other_worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "100.00")
    cats = await create_project(db, requester.id, title="Cats")
    dogs = await create_project(db, requester.id, title="Dogs")

    async def approved(project_id: str, reward: int, minutes: int, who=worker):
        return await create_assignment(
            db,
            requester_id=requester.id,
            worker_id=who.id,
            project_id=project_id,
            status="approved",
            reward_cents=reward,
            work_seconds=minutes * 60,
        )

    a1 = await approved(cats, 200, 30)
    a2 = await approved(cats, 100, 15)
    a3 = await approved(dogs, 300, 45)
    stranger_work = await approved(cats, 5_000, 60, who=other_worker)
    for work, who in ((a1, worker), (a2, worker), (stranger_work, other_worker)):
        body = payout_body(
            requester_id=requester.id,
            worker_id=who.id,
            project_id=work.project_id,
            task_id=work.task_id,
            assignment_id=work.assignment_id,
            reward_cents=work.reward_cents,
            fee_cents=work.reward_cents // 5,
            source="available",
        )
        assert (await pay(payments_client, body)).status_code == 201
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    await _backdated_payout(
        db, requester_id=requester.id, worker_id=worker.id, work=a3, fee_cents=60, at=two_days_ago
    )
    bonus = await payments_client.post(
        "/v1/bonuses",
        json={"assignment_id": a1.assignment_id, "amount": "1.00", "reason": "careful work"},
        headers=requester.headers,
    )
    assert bonus.status_code == 201
    await assert_ledger_ok(payments_client)

    resp = await payments_client.get("/v1/earnings", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["total"], body["rewards"], body["bonuses"]) == ("7.00", "6.00", "1.00")
    today = datetime.now(UTC).date()
    assert body["by_day"] == [
        {"date": two_days_ago.date().isoformat(), "amount": "3.00", "assignments": 1},
        {"date": today.isoformat(), "amount": "4.00", "assignments": 2},
    ]
    # per project: cats 2.00 + 1.00 rewards and the 1.00 bonus over 45 minutes, dogs 3.00 over 45
    common = {"requester_id": requester.id, "pay_model": "per_assignment"}
    assert body["by_project"] == [
        {
            "project_id": cats,
            "project_title": "Cats",
            "amount": "4.00",
            "assignments": 2,
            "measured_seconds": 2700,
            "hours_worked": 0.75,
            "hourly_rate": "5.33",
            **common,
        },
        {
            "project_id": dogs,
            "project_title": "Dogs",
            "amount": "3.00",
            "assignments": 1,
            "measured_seconds": 2700,
            "hours_worked": 0.75,
            "hourly_rate": "4.00",
            **common,
        },
    ]
    assert body["by_requester"] == [
        {
            "requester_id": requester.id,
            "amount": "7.00",
            "assignments": 3,
            "measured_seconds": 5400,
            "hours_worked": 1.5,
            "hourly_rate": "4.67",
        },
    ]

    def monday(day: date) -> str:
        return (day - timedelta(days=day.weekday())).isoformat()

    weeks: dict[str, tuple[int, int]] = {}
    for day, cents, secs in (
        (two_days_ago.date(), 300, 2700),
        (datetime.now(UTC).date(), 400, 2700),
    ):
        got = weeks.get(monday(day), (0, 0))
        weeks[monday(day)] = (got[0] + cents, got[1] + secs)
    assert [(w["week_start"], w["amount"], w["measured_seconds"]) for w in body["by_week"]] == [
        (week, f"{cents // 100}.{cents % 100:02d}", secs)
        for week, (cents, secs) in sorted(weeks.items())
    ]
    assert body["hours_worked"] == 1.5  # 30 + 15 + 45 minutes
    assert body["hourly_rate"] == "4.67"  # 7.00 / 1.5 h = 4.6666...

    only_today = (
        await payments_client.get(
            "/v1/earnings", params={"from": today.isoformat()}, headers=worker.headers
        )
    ).json()
    assert only_today["from"] == today.isoformat() and only_today["to"] is None
    assert only_today["total"] == "4.00" and only_today["hours_worked"] == 0.75
    assert only_today["hourly_rate"] == "5.33"
    until_yesterday = (
        await payments_client.get(
            "/v1/earnings",
            params={"to": (today - timedelta(days=1)).isoformat()},
            headers=worker.headers,
        )
    ).json()
    assert (
        until_yesterday["total"] == "3.00"
        and until_yesterday["by_project"][0]["project_id"] == dogs
    )


async def test_no_earnings_means_no_rate(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    body = (await payments_client.get("/v1/earnings", headers=worker.headers)).json()
    assert body["total"] == "0.00" and body["by_day"] == [] and body["by_project"] == []
    assert body["hours_worked"] == 0 and body["hourly_rate"] is None


async def test_bad_ranges_are_422_and_requesters_are_403(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    requester = await create_requester(workers_client)
    backwards = await payments_client.get(
        "/v1/earnings", params={"from": "2026-02-02", "to": "2026-02-01"}, headers=worker.headers
    )
    assert backwards.status_code == 422
    not_a_date = await payments_client.get(
        "/v1/earnings", params={"from": "yesterday"}, headers=worker.headers
    )
    assert not_a_date.status_code == 422
    assert (await payments_client.get("/v1/earnings", headers=requester.headers)).status_code == 403
