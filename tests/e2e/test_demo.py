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
    LEVEL_1_APPROVED_ANSWERS,
    LEVEL_1_REWARD,
    LEVEL_DEPOSIT,
    LEVEL_REWARD,
    LEVEL_TASKS,
    REWARD,
    TASKS,
    TRAINING_ANSWERS,
    TRAINING_PASS,
    TRAINING_TASKS,
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

    check_levels_and_appeal(r)

    # the printed summary carries the same figures
    assert f"spent ${r.requester_balance['spent']}" in printed
    assert "Femi level 0 -> 1 (training 75%, granted 75); appeal overturned" in printed
    assert f"-> paid ${sheet['paid']} (fee ${sheet['fee']})" in printed
    assert "Ledger check: ok=True" in printed


def sheet_money(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


def fee_of(reward_cents: int) -> int:
    """The platform's fee on a reward: 20%, rounded half up, at least a cent."""
    return max(1, (reward_cents * 20 + 50) // 100)


def check_levels_and_appeal(r) -> None:
    """Femi's climb from level 0 to 1 after training, and the appeal Globex overturned."""
    before, after = r.level_before, r.level_after
    assert (before["level"], before["name"]) == (0, "entry")
    assert before["figures"]["approved_answers"] == 0 and before["figures"]["tests_passed"] == 0
    nxt = {t["threshold"]: t for t in before["next_level"]["thresholds"]}
    assert before["next_level"]["level"] == 1 and before["next_level"]["name"] == "intermediate"
    assert nxt["approved_answers"]["required"] == LEVEL_1_APPROVED_ANSWERS
    assert nxt["approved_answers"]["text"] == f"0 of {LEVEL_1_APPROVED_ANSWERS} approved answers"
    assert not nxt["approved_answers"]["met"] and not nxt["tests_passed"]["met"]

    # training: instant feedback on each answer, 3 of 4 right, passed and granted at 75
    gold = {label for _, label, _ in TRAINING_TASKS}
    explanations = {why for _, _, why in TRAINING_TASKS}
    feedback = r.training_feedback
    assert len(feedback) == TRAINING_ANSWERS
    assert [f["correct"] for f in feedback] == [True, True, True, False]
    assert all(f["expected_answer"]["label"] in gold for f in feedback)
    assert all(f["explanation"] in explanations for f in feedback)
    assert [f["progress"]["answers"] for f in feedback] == [1, 2, 3, 4]
    progress = r.training_progress
    assert (progress["status"], progress["correct"], progress["accuracy"]) == ("passed", 3, 75)
    assert progress["granted_value"] == TRAINING_PASS == r.training_grant_value == 75

    # the training pass is the test level 1 asks for; the 50 approved answers are still missing
    trained = {t["threshold"]: t for t in r.level_trained["next_level"]["thresholds"]}
    assert r.level_trained["level"] == 0 and r.level_trained["figures"]["tests_passed"] == 1
    assert trained["tests_passed"]["met"]
    tests = trained["tests_passed"]
    assert (tests["current"], tests["required"]) == (1, 1) and tests["text"].startswith("1 of 1 ")
    assert not trained["approved_answers"]["met"]
    assert r.level_trained["figures"]["approved_answers"] == 0  # training never counts

    # publish reserved the highest tier (reward + fee) for every slot
    tier, base = cents(LEVEL_1_REWARD), cents(LEVEL_REWARD)
    assert cents(r.tiered_reserved_at_publish) == LEVEL_TASKS * (tier + fee_of(tier))

    # level 1 once 50 answers were approved
    assert (after["level"], after["name"]) == (1, "intermediate")
    figures = after["figures"]
    assert figures["approved_answers"] == LEVEL_1_APPROVED_ANSWERS
    assert (figures["approval_rate"], figures["tests_passed"]) == (100, 1)  # the training
    assert [(h["from_level"], h["to_level"]) for h in after["history"]][:1] == [(0, 1)]
    assert after["next_level"]["level"] == 2

    # the paid answers: 50 at the base reward, then 2 at the level-1 tier (fixed at accept),
    # all approved in the end (the contested one by the appeal); training answers pay 0.00
    paid = [a for a in r.femi_assignments if a["project_id"] == r.ids["tiered_project"]]
    practice = [a for a in r.femi_assignments if a["project_id"] == r.ids["training_project"]]
    assert sorted(cents(a["reward"]) for a in paid) == [base] * 50 + [tier] * 2
    assert r.femi_accept_rewards == [LEVEL_REWARD] * 50 + [LEVEL_1_REWARD] * 2  # in order
    assert {a["status"] for a in paid} == {"approved"}
    assert len(practice) == TRAINING_ANSWERS and {a["reward"] for a in practice} == {"0.00"}
    counts = r.tiered_project["counts"]
    assert (counts["approved"], counts["rejected"]) == (52, 0)

    # the appeal: open, listed to Globex, overturned with its feedback as the reason
    opened, final = r.appeal_open, r.appeal
    assert opened["status"] == "open" and opened["worker_id"] == r.ids["femi"]
    assert [a["id"] for a in r.appeal_listed] == [opened["id"]]
    assert final["id"] == opened["id"] and final["status"] == "overturned"
    assert final["reason"] == "You are right, sorry: approved." and final["decided_at"]

    # standing: training never counts, the overturned rejection is an approval
    profile = r.femi_profile
    assert (profile["approved_count"], profile["rejected_count"]) == (52, 0)
    assert float(profile["approval_rate"]) == 100.0

    # money, to the cent: 50 x base + 2 x tier to Femi; Globex paid those plus their fees
    earned = 50 * base + 2 * tier
    femi = {k: cents(v) for k, v in r.femi_balance.items() if k != "kind"}
    assert (femi["available"], femi["pending"], femi["withdrawn"]) == (earned, 0, 0)
    assert cents(r.femi_earnings["total"]) == earned
    spent = 50 * (base + cents(r.tiered_project["fee_per_assignment"])) + 2 * (tier + fee_of(tier))
    globex = {k: cents(v) for k, v in r.globex_balance.items() if k != "kind"}
    assert (globex["reserved"], globex["spent"]) == (0, spent)
    assert globex["available"] == cents(LEVEL_DEPOSIT) - spent
