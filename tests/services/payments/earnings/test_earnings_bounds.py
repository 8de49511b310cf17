"""`GET /v1/earnings`: bounded, strictly validated days (422, never 500) and no hourly rate over
too little measured work (null, with `measured_seconds` beside it)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
import pytest

from shared.money import MIN_RATE_SECONDS
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import create_assignment, deposit, pay, payout_body


def assert_422_on(resp: httpx.Response, param: str) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["code"] == "validation_error", problem
    assert problem["errors"][0]["loc"] == ["query", param], problem


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("to", "9999-12-31"),  # to + 1 day overflowed: 500
        ("from", "9999-12-31"),
        ("to", "3000-01-01"),
        ("from", "0001-01-01"),
        ("to", "1969-12-31"),
        ("from", "0"),  # pydantic alone reads "0" as 1970-01-01
        ("to", "86400"),
        ("to", "2026-01-01T00:00:00Z"),  # a datetime, not a day
    ],
)
async def test_out_of_range_or_malformed_days_are_422(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, param, value
) -> None:
    worker = await create_worker(workers_client)
    resp = await payments_client.get("/v1/earnings", params={param: value}, headers=worker.headers)
    assert_422_on(resp, param)


async def test_the_widest_range_is_answered(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    worker = await create_worker(workers_client)
    resp = await payments_client.get(
        "/v1/earnings",
        params={"from": "1970-01-01", "to": "2999-12-31"},
        headers=worker.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == "0.00" and body["hourly_rate"] is None
    assert body["measured_seconds"] == 0


async def _paid(
    payments_client: httpx.AsyncClient,
    db: asyncpg.Pool,
    requester: Actor,
    worker: Actor,
    *,
    reward_cents: int,
    work_seconds: float,
) -> None:
    """One approved assignment, accepted `work_seconds` before its submission, paid."""
    work = await create_assignment(
        db,
        requester_id=requester.id,
        worker_id=worker.id,
        status="approved",
        reward_cents=reward_cents,
        work_seconds=work_seconds,  # type: ignore[arg-type]  (timedelta takes fractions)
    )
    body = payout_body(
        requester_id=requester.id,
        worker_id=worker.id,
        project_id=work.project_id,
        task_id=work.task_id,
        assignment_id=work.assignment_id,
        reward_cents=reward_cents,
        fee_cents=reward_cents // 5,
        source="available",
    )
    resp = await pay(payments_client, body)
    assert resp.status_code == 201, resp.text


async def test_a_rate_over_milliseconds_is_null_with_the_measured_seconds(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "100.00")
    # 11.17 paid for 10 ms of work used to be reported as 4,021,200.00 an hour.
    await _paid(payments_client, db, requester, worker, reward_cents=1117, work_seconds=0.01)
    resp = await payments_client.get("/v1/earnings", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == "11.17"
    assert "hourly_rate" in body and body["hourly_rate"] is None
    assert body["measured_seconds"] == 0
    assert body["hourly_rate_min_seconds"] == MIN_RATE_SECONDS == 300
    assert body["hours_worked"] == 0.0


async def test_the_rate_appears_at_the_threshold(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await deposit(payments_client, requester, "100.00")
    await _paid(
        payments_client, db, requester, worker, reward_cents=100, work_seconds=MIN_RATE_SECONDS - 1
    )
    body = (await payments_client.get("/v1/earnings", headers=worker.headers)).json()
    assert body["hourly_rate"] is None and body["measured_seconds"] == MIN_RATE_SECONDS - 1

    await _paid(payments_client, db, requester, worker, reward_cents=100, work_seconds=1)
    body = (await payments_client.get("/v1/earnings", headers=worker.headers)).json()
    assert body["measured_seconds"] == MIN_RATE_SECONDS
    assert body["total"] == "2.00" and body["hourly_rate"] == "24.00"  # 2.00 per 5 minutes
    assert timedelta(seconds=body["measured_seconds"]) == timedelta(minutes=5)
