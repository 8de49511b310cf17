"""`GET /v1/earnings` per project, requester and week for both pay models: a per-answer
project's hours are its paid answers' measured time (a pay floor top-up adds pay, not time), an
hourly project's are its paid timesheets' `seconds_worked`; a rate over under 300 s is null."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import (
    INTERNAL,
    assert_ledger_ok,
    create_assignment,
    create_project,
    deposit,
    insert_row,
    pay,
    payout_body,
    reserve,
)


async def test_hours_and_real_rates_per_project_requester_and_week_for_both_pay_models(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db
) -> None:
    worker = await create_worker(workers_client)
    per_answer_owner = await create_requester(workers_client)
    hourly_owner = await create_requester(workers_client)
    await deposit(payments_client, per_answer_owner, "100.00")
    await deposit(payments_client, hourly_owner, "100.00")

    # Per-answer: two answers of 10 minutes at 1.00, one topped up 0.50 by the pay floor.
    labels = await create_project(db, per_answer_owner.id, title="Labels", reward_cents=100)
    answers = [
        await create_assignment(
            db,
            requester_id=per_answer_owner.id,
            worker_id=worker.id,
            project_id=labels,
            status="approved",
            reward_cents=100,
            work_seconds=600,
        )
        for _ in range(2)
    ]
    for work in answers:
        body = payout_body(
            requester_id=per_answer_owner.id,
            worker_id=worker.id,
            project_id=labels,
            task_id=work.task_id,
            assignment_id=work.assignment_id,
            reward_cents=100,
            fee_cents=20,
            source="available",
        )
        assert (await pay(payments_client, body)).status_code == 201
    top_up = {
        "key": f"topup:{answers[0].assignment_id}",
        "requester_id": per_answer_owner.id,
        "project_id": labels,
        "task_id": answers[0].task_id,
        "assignment_id": answers[0].assignment_id,
        "worker_id": worker.id,
        "amount_cents": 50,
        "fee_cents": 10,
        "source": "available",
    }
    resp = await payments_client.post("/internal/top-ups", json=top_up, headers=INTERNAL)
    assert resp.status_code == 201, resp.text

    # A project with a few seconds of work: its own rate means nothing (null).
    quick = await create_project(db, per_answer_owner.id, title="Quick", reward_cents=100)
    fast = await create_assignment(
        db,
        requester_id=per_answer_owner.id,
        worker_id=worker.id,
        project_id=quick,
        status="approved",
        reward_cents=100,
        work_seconds=5,
    )
    body = payout_body(
        requester_id=per_answer_owner.id,
        worker_id=worker.id,
        project_id=quick,
        task_id=fast.task_id,
        assignment_id=fast.assignment_id,
        reward_cents=100,
        fee_cents=20,
        source="available",
    )
    assert (await pay(payments_client, body)).status_code == 201

    # Hourly: a timesheet of 2 hours worked, paid 1.5 h (30 minutes disputed) at 18.00.
    transcripts = new_id()
    await insert_row(
        db,
        "projects",
        {
            "id": transcripts,
            "requester_id": hourly_owner.id,
            "status": "published",
            "title": "Transcripts",
            "task_type": "transcription",
            "reward_cents": 0,
            "fee_cents": 0,
            "assignment_duration_seconds": 600,
            "lifetime_seconds": 86_400,
            "auto_approve_seconds": 3_600,
            "pay_model": "hourly",
            "hourly_rate_cents": 1_800,
            "budget_seconds": 36_000,
            "max_seconds_per_worker_per_week": 36_000,
            "idle_timeout_seconds": 300,
        },
    )
    monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    timesheet = new_id()
    await insert_row(
        db,
        "timesheets",
        {
            "id": timesheet,
            "project_id": transcripts,
            "worker_id": worker.id,
            "requester_id": hourly_owner.id,
            "week_start": monday,
            "seconds_worked": 7_200,
            "status": "approved",
            "auto_approve_at": datetime.now(UTC),
            "approved_at": datetime.now(UTC),
            "paid_seconds": 5_400,
            "paid_cents": 2_700,
            "fee_cents": 540,
        },
    )
    resp = await reserve(
        payments_client, requester_id=hourly_owner.id, project_id=transcripts, amount_cents=3_240
    )
    assert resp.status_code == 201, resp.text
    resp = await payments_client.post(
        "/internal/payouts",
        json={
            "key": f"pay:timesheet:{timesheet}",
            "requester_id": hourly_owner.id,
            "project_id": transcripts,
            "timesheet_id": timesheet,
            "worker_id": worker.id,
            "reward_cents": 2_700,
            "fee_cents": 540,
            "source": "reserved",
        },
        headers=INTERNAL,
    )
    assert resp.status_code == 201, resp.text
    await assert_ledger_ok(payments_client)

    body = (await payments_client.get("/v1/earnings", headers=worker.headers)).json()
    projects = {p["project_id"]: p for p in body["by_project"]}
    # 2.50 over 20 minutes (the top-up adds pay, not time): 7.50 an hour
    assert projects[labels] == {
        "project_id": labels,
        "project_title": "Labels",
        "requester_id": per_answer_owner.id,
        "pay_model": "per_assignment",
        "amount": "2.50",
        "assignments": 2,
        "measured_seconds": 1_200,
        "hours_worked": 0.3333,
        "hourly_rate": "7.50",
    }
    assert projects[quick]["measured_seconds"] == 5 and projects[quick]["hourly_rate"] is None
    # 27.00 over the 2 hours worked (not the 1.5 paid): the real rate is 13.50, not 18.00
    assert projects[transcripts] == {
        "project_id": transcripts,
        "project_title": "Transcripts",
        "requester_id": hourly_owner.id,
        "pay_model": "hourly",
        "amount": "27.00",
        "assignments": 0,
        "measured_seconds": 7_200,
        "hours_worked": 2.0,
        "hourly_rate": "13.50",
    }
    assert [p["project_id"] for p in body["by_project"]] == [transcripts, labels, quick]
    requesters = {r["requester_id"]: r for r in body["by_requester"]}
    # 3.50 over 1,205 s: 10.46 an hour (3.50 x 3600 / 1205 = 10.456)
    assert requesters[per_answer_owner.id]["amount"] == "3.50"
    assert requesters[per_answer_owner.id]["measured_seconds"] == 1_205
    assert requesters[per_answer_owner.id]["hourly_rate"] == "10.46"
    assert requesters[hourly_owner.id]["hourly_rate"] == "13.50"
    assert body["by_week"] == [
        {
            "week_start": monday.isoformat(),
            "amount": "30.50",
            "measured_seconds": 8_405,
            "hours_worked": 2.3347,
            "hourly_rate": "13.06",  # 30.50 x 3600 / 8405 = 13.0636
        }
    ]
    assert (body["total"], body["bonuses"], body["measured_seconds"]) == ("30.50", "0.50", 8_405)
    # Answers paid: the timesheet's payout is a week of hourly work, not an answer.
    assert sum(d["assignments"] for d in body["by_day"]) == 3
    assert body["hourly_rate"] == "13.06"
