"""The demo, played against the real service processes, with every printed figure checked."""

from __future__ import annotations

from collections import Counter

from devtools.demo import (
    ANSWERS_PER_TASK,
    BONUS,
    DEPOSIT,
    HOURLY_BEATS,
    HOURLY_BUDGET_HOURS,
    HOURLY_DEPOSIT,
    HOURLY_RATE,
    REWARD,
    TASKS,
    WITHDRAWAL,
    cents,
    run_demo,
)
from tests.conftest import INTERNAL_TOKEN, LiveServices


async def test_demo_story_adds_up_to_the_cent(live_services: LiveServices) -> None:
    lines: list[str] = []
    r = await run_demo(
        live_services.urls,
        INTERNAL_TOKEN,
        say=lines.append,
        internal_urls=live_services.internal_urls,  # a gateway does not route /internal/*
    )
    printed = "\n".join(lines)

    # who could work
    assert r.qualified == {"Alice": True, "Bob": True, "Carol": False, "Carol (retake)": True}
    assert r.refused_code == "not_qualified"
    assert r.reopened_task_filled_by == "Carol"

    # assignment counts agree between the workers' own lists and the project
    approved = {n: c.get("approved", 0) for n, c in r.assignments_by_worker.items()}
    rejected = {n: c.get("rejected", 0) for n, c in r.assignments_by_worker.items()}
    assert rejected == {"Alice": 0, "Bob": 1, "Carol": 0}
    assert approved["Alice"] == TASKS  # Alice labeled every photo once
    assert approved["Bob"] == TASKS - 1
    counts = r.project["counts"]
    assert counts["approved"] == sum(approved.values())
    assert counts["rejected"] == 1
    assert counts["tasks"] == TASKS
    assert sum(approved.values()) <= TASKS * ANSWERS_PER_TASK
    assert all(
        c.get("submitted", 0) == 0 and c.get("accepted", 0) == 0
        for c in r.assignments_by_worker.values()
    )

    # money, to the cent
    fee = cents(r.project["fee_per_assignment"])
    reward = cents(REWARD)
    bonus = cents(BONUS)
    bonus_fee = max(1, (bonus * 20 + 50) // 100)
    req = {k: cents(v) for k, v in r.requester_balance.items() if k != "kind"}
    assert req["reserved"] == 0  # closed: every unused slot released
    assert req["spent"] == sum(approved.values()) * (reward + fee) + bonus + bonus_fee
    assert req["available"] + req["reserved"] + req["spent"] == cents(DEPOSIT)
    paid_to_workers = 0
    for name, bal in r.worker_balances.items():
        b = {k: cents(v) for k, v in bal.items() if k != "kind"}
        expected = approved[name] * reward + (bonus if name == "Alice" else 0)
        assert b["pending"] == 0
        assert b["available"] + b["withdrawn"] == expected, name
        assert cents(r.earnings[name]["total"]) == expected, name
        paid_to_workers += expected
    assert cents(r.worker_balances["Alice"]["withdrawn"]) == cents(WITHDRAWAL)
    assert req["spent"] - paid_to_workers == r.platform_fees_cents
    assert r.ledger_check["ok"] is True

    # approval rates as the workers service reports them
    for name in ("Alice", "Bob", "Carol"):
        decided = approved[name] + rejected[name]
        profile = r.approval_rates[name]
        assert profile["approved_count"] == approved[name]
        assert profile["rejected_count"] == rejected[name]
        assert round(float(profile["approval_rate"]), 1) == round(100 * approved[name] / decided, 1)

    # consensus: one record per photo, agreement recomputed from the answers shown
    assert len(r.results) == TASKS
    for record in r.results:
        counted = [a for a in record["answers"] if a["status"] in ("approved", "submitted")]
        labels = Counter(a["answer"]["label"] for a in counted)
        top, n = labels.most_common(1)[0]
        assert record["aggregate"]["agreement"] == round(n / len(counted), 2)
        if list(labels.values()).count(n) == 1:
            assert record["aggregate"]["answer"] == {"label": top}

    # the hourly project: measured seconds x $18.00/h, to the cent
    rate = cents(HOURLY_RATE)
    assert rate == 1800
    session, sheet = r.hourly_session, r.hourly_timesheet
    assert session["status"] == "ended" and session["ended_reason"] == "worker"
    assert (
        session["activity_events"] == 1 + 1 + HOURLY_BEATS + 1 + 1
    )  # open, accept, beats, submit, end
    assert HOURLY_BEATS <= session["seconds_worked"] <= HOURLY_BEATS + 5
    assert sheet["status"] == "approved" and sheet["approved_by"] == "requester"
    assert (sheet["seconds_worked"], sheet["paid_seconds"]) == (session["seconds_worked"],) * 2
    assert (sheet["answers_submitted"], sheet["answers_approved"], sheet["sessions"]) == (1, 1, 1)
    paid = sheet["seconds_worked"] * rate // 3600
    fee = max(1, (paid * 20 + 50) // 100) if paid else 0
    assert (cents(sheet["paid"]), cents(sheet["fee"])) == (paid, fee)
    assert [w["id"] for w in sheet["work_sessions"]] == [session["id"]]
    erin = {k: cents(v) for k, v in r.hourly_worker_balance.items() if k != "kind"}
    assert (erin["available"], erin["pending"], erin["withdrawn"]) == (paid, 0, 0)
    assert cents(r.hourly_worker_earnings["total"]) == paid
    dana = {k: cents(v) for k, v in r.hourly_requester_balance.items() if k != "kind"}
    assert (dana["reserved"], dana["spent"]) == (0, paid + fee)
    assert dana["available"] == cents(HOURLY_DEPOSIT) - paid - fee
    hp = r.hourly_project
    assert (hp["pay_model"], hp["hourly_rate"], hp["budget_hours"]) == (
        "hourly",
        HOURLY_RATE,
        HOURLY_BUDGET_HOURS,
    )
    assert hp["money"] == {"reserved": "0.00", "spent": sheet_money(paid + fee)}
    assert hp["budget_hours_used"] == round(session["seconds_worked"] / 3600, 4)

    # the printed summary carries the same figures
    assert f"spent ${r.requester_balance['spent']}" in printed
    assert f"-> paid ${sheet['paid']} (fee ${sheet['fee']})" in printed
    assert "Ledger check: ok=True" in printed


def sheet_money(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"
