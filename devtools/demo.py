"""The whole marketplace story, played against the running services through the public HTTP API.

`python3 manage.py demo` (after `python3 manage.py run` in another terminal). Only public
endpoints are used, plus `GET /internal/ledger/check` with the internal token for the final audit.
The figures printed are returned as a `DemoReport`, which tests/e2e/test_demo.py checks to the cent.

The story: a requester signs up and deposits money, creates a qualification type with a scored
test, and publishes an image-classification project (50 tasks, 3 answers each) that requires it.
Three workers sign up: one fails the test and is refused work, two pass and label. The requester
approves most work, rejects one answer with feedback, and pays a bonus. The failed worker retakes
the test once the retry delay has passed, passes, and takes work — including the reopened slot.
A worker withdraws, results come down with a consensus label per image, and the requester closes
the project, which releases the money of slots nobody filled.

Then an hourly project: a second requester publishes audio transcription paid $18.00 an hour
(the budget's pay and fee reserved), a worker works in a session (heartbeats, an accepted and
submitted clip) whose time the server measures, the requester closes the project (the unearned
budget goes back) and approves the week's timesheet, which pays seconds x $18.00/h.

Then levels and fair review: a third requester publishes a training project (sentiment, instant
feedback) that grants its qualification, and a paid project that requires it and pays level-1
workers more (`reward_by_level`). A new worker, Femi, starts at level 0, trains (3 of 4 right:
passed, granted 75; the pass counts as the test level 1 asks for), labels 50 reviews at the base
reward, and once they are approved climbs to level 1; his next answers pay the level-1 tier.
One of them is rejected, Femi appeals, and the requester overturns the appeal: the answer is
paid like an override.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

LABELS = ["cat", "dog", "bird"]
TASKS = 50
ANSWERS_PER_TASK = 3
REWARD = "0.05"
DEPOSIT = "50.00"
BONUS = "0.50"
WITHDRAWAL = "1.00"
RETRY_DELAY_SECONDS = 2
HOURLY_RATE = "18.00"
HOURLY_BUDGET_HOURS = 2
HOURLY_DEPOSIT = "50.00"
HOURLY_BEATS = 4  # heartbeats, one a second: a few seconds of measured work
# Levels and fair review (the third part): a training project, then paid work with a level tier.
LEVEL_DEPOSIT = "20.00"
LEVEL_REWARD = "0.05"
LEVEL_1_REWARD = "0.08"
LEVEL_TASKS = 55
LEVEL_1_APPROVED_ANSWERS = 50  # the workers service's default level-1 threshold
TRAINING_ANSWERS = 4
TRAINING_PASS = 75
SENTIMENTS = ["positive", "negative", "neutral"]
TRAINING_TASKS = [
    ("Arrived early and works perfectly.", "positive", "Praise with no complaint."),
    ("Broke after two days; I want my money back.", "negative", "A defect and a refund request."),
    ("The box contains one charger.", "neutral", "A fact, no opinion either way."),
    ("Great price, terrible battery.", "negative", "The complaint is about what matters most."),
    ("Does what it says.", "positive", "Plain satisfaction is still positive."),
    ("Delivered on Tuesday.", "neutral", "A delivery date states no opinion."),
]
APPEAL_MESSAGE = "My label is what the review says, word for word: please look again."

QUESTIONS = [
    {
        "id": "q1",
        "prompt": "Which label fits a photo of a kitten asleep on a sofa?",
        "kind": "single_choice",
        "options": [
            {"id": "a", "text": "cat"},
            {"id": "b", "text": "dog"},
            {"id": "c", "text": "bird"},
        ],
    },
    {
        "id": "q2",
        "prompt": "Which labels describe animals with feathers? (all that apply)",
        "kind": "multiple_choice",
        "options": [
            {"id": "a", "text": "sparrow"},
            {"id": "b", "text": "puppy"},
            {"id": "c", "text": "parrot"},
        ],
    },
    {"id": "q3", "prompt": "How many labels does this project use?", "kind": "number"},
]
ANSWER_KEY = {
    "answers": {
        "q1": {"correct": ["a"], "score": 1},
        "q2": {"correct": ["a", "c"], "score": 1},
        "q3": {"correct": 3, "score": 1},
    },
    "mapping": "percentage",
}
GOOD_ANSWERS = {"q1": "a", "q2": ["a", "c"], "q3": 3}
BAD_ANSWERS = {"q1": "b", "q2": ["b"], "q3": 2}


def cents(money: str) -> int:
    """Dollar string -> integer cents (for checking sums exactly)."""
    return int(Decimal(money) * 100)


def dollars(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


@dataclass
class Person:
    name: str
    kind: str
    id: str = ""
    key: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class DemoReport:
    """Everything the demo printed, for the end-to-end test to check."""

    requester_balance: dict[str, str] = field(default_factory=dict)
    worker_balances: dict[str, dict[str, str]] = field(default_factory=dict)
    earnings: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_rates: dict[str, Any] = field(default_factory=dict)
    assignments_by_worker: dict[str, dict[str, int]] = field(default_factory=dict)
    qualified: dict[str, bool] = field(default_factory=dict)
    refused_code: str | None = None
    rejected_assignment: str = ""
    reopened_task: str = ""
    reopened_task_filled_by: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    mean_agreement: float | None = None
    platform_fees_cents: int = 0
    project: dict[str, Any] = field(default_factory=dict)
    ledger_check: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    # The hourly part: the project, the worker's session and timesheet (as approved), and the
    # balances and earnings of its requester and worker.
    hourly_project: dict[str, Any] = field(default_factory=dict)
    hourly_session: dict[str, Any] = field(default_factory=dict)
    hourly_timesheet: dict[str, Any] = field(default_factory=dict)
    hourly_requester_balance: dict[str, str] = field(default_factory=dict)
    hourly_worker_balance: dict[str, str] = field(default_factory=dict)
    hourly_worker_earnings: dict[str, Any] = field(default_factory=dict)
    # Levels and fair review: Femi's level before and after, the training feedback and
    # progress, his assignments of the paid project, the appeal, and the money of both sides.
    level_before: dict[str, Any] = field(default_factory=dict)
    level_trained: dict[str, Any] = field(default_factory=dict)
    level_after: dict[str, Any] = field(default_factory=dict)
    training_feedback: list[dict[str, Any]] = field(default_factory=list)
    training_progress: dict[str, Any] = field(default_factory=dict)
    training_grant_value: int | None = None
    tiered_project: dict[str, Any] = field(default_factory=dict)
    tiered_reserved_at_publish: str = ""
    femi_assignments: list[dict[str, Any]] = field(default_factory=list)
    femi_accept_rewards: list[str] = field(default_factory=list)
    appeal_open: dict[str, Any] = field(default_factory=dict)
    appeal_listed: list[dict[str, Any]] = field(default_factory=list)
    appeal: dict[str, Any] = field(default_factory=dict)
    femi_profile: dict[str, Any] = field(default_factory=dict)
    femi_balance: dict[str, str] = field(default_factory=dict)
    femi_earnings: dict[str, Any] = field(default_factory=dict)
    globex_balance: dict[str, str] = field(default_factory=dict)


class DemoError(RuntimeError):
    pass


class Api:
    def __init__(
        self,
        urls: dict[str, str],
        internal_token: str | None,
        internal_urls: dict[str, str] | None = None,
    ) -> None:
        self.urls = urls
        self.internal_urls = internal_urls or urls
        self.internal_token = internal_token
        self.client = httpx.AsyncClient(timeout=30)

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        who: Person | None = None,
        *,
        expect: int | tuple[int, ...] = (200, 201),
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.update(who.headers)
        base = self.internal_urls if path.startswith("/internal/") else self.urls
        resp = await self.client.request(method, base[service] + path, headers=headers, **kw)
        expected = (expect,) if isinstance(expect, int) else expect
        if resp.status_code not in expected:
            raise DemoError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp

    async def close(self) -> None:
        await self.client.aclose()


async def _sign_up(api: Api, person: Person, run_tag: str, **extra: Any) -> None:
    resp = await api.call(
        "workers",
        "POST",
        "/v1/accounts",
        json={
            "kind": person.kind,
            "name": person.name,
            "email": f"{person.name.lower()}-{run_tag}@demo.example",
            **extra,
        },
    )
    body = resp.json()
    person.id, person.key = body["account"]["id"], body["api_key"]


async def _take_test(api: Api, worker: Person, type_id: str, answers: dict[str, Any]) -> dict:
    attempt = (
        await api.call("workers", "POST", f"/v1/qualification-types/{type_id}/attempts", worker)
    ).json()
    resp = await api.call(
        "workers",
        "POST",
        f"/v1/qualification-attempts/{attempt['attempt_id']}/submit",
        worker,
        json={"answers": answers},
    )
    return resp.json()


async def _label_until_done(
    api: Api,
    worker: Person,
    project_id: str,
    truth: dict[str, str],
    accuracy: float,
    rng: random.Random,
    *,
    stop_at_task: str | None = None,
) -> list[str]:
    """Accept and answer until no work is left (or the given task was answered)."""
    done: list[str] = []
    while True:
        resp = await api.call(
            "tasks", "POST", f"/v1/work/projects/{project_id}/accept", worker, expect=(201, 404)
        )
        if resp.status_code == 404:
            return done
        work = resp.json()
        right = truth[work["input"]["image_url"]]
        label = right if rng.random() < accuracy else rng.choice([x for x in LABELS if x != right])
        await asyncio.sleep(0.01)  # a (very) fast human
        await api.call(
            "tasks",
            "POST",
            f"/v1/assignments/{work['assignment_id']}/submit",
            worker,
            json={"answer": {"label": label}},
        )
        done.append(work["task_id"])
        if stop_at_task is not None and work["task_id"] == stop_at_task:
            return done


async def _all_pages(api: Api, service: str, path: str, who: Person, **params: Any) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        page = (await api.call(service, "GET", path, who, params=query)).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def _wait_until(check: Callable[[], Any], what: str, seconds: float = 30.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await check():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise DemoError(f"timed out waiting for {what}") from None


async def run_demo(
    urls: dict[str, str],
    internal_token: str | None,
    say: Callable[[str], None] = print,
    internal_urls: dict[str, str] | None = None,
) -> DemoReport:
    """`urls`: where the public API is (each service, or a gateway); `internal_urls`: where
    /internal/* is (a process of each service: a gateway never routes it), `urls` by default."""
    api = Api(urls, internal_token, internal_urls)
    rng = random.Random(7)
    report = DemoReport()
    tag = uuid.uuid4().hex[:8]
    try:
        requester = Person("Acme", "requester")
        alice, bob, carol = (Person(n, "worker") for n in ("Alice", "Bob", "Carol"))
        await _sign_up(api, requester, tag, country="US")
        for w, country in ((alice, "DE"), (bob, "KE"), (carol, "PH")):
            await _sign_up(api, w, tag, country=country, languages=["en"])
        say(f"1. {requester.name} (requester) and workers Alice, Bob, Carol signed up")

        await api.call(
            "payments",
            "POST",
            "/v1/deposits",
            requester,
            json={"amount": DEPOSIT},
            headers={"Idempotency-Key": f"demo-deposit-{tag}"},
        )
        say(f"2. {requester.name} deposited ${DEPOSIT}")

        qtype = (
            await api.call(
                "workers",
                "POST",
                "/v1/qualification-types",
                requester,
                json={
                    "name": f"Animal photo labeling test {tag}",
                    "description": "Three questions about animals and the project's labels.",
                    "keywords": ["images", "animals"],
                    "test": {"questions": QUESTIONS, "duration_seconds": 600},
                    "answer_key": ANSWER_KEY,
                    "retry_delay_seconds": RETRY_DELAY_SECONDS,
                    "status": "active",
                },
            )
        ).json()
        say(f"3. Qualification type '{qtype['name']}' with a scored 3-question test created")

        truth = {f"https://images.example/{i:03d}.jpg": rng.choice(LABELS) for i in range(TASKS)}
        project = (
            await api.call(
                "tasks",
                "POST",
                "/v1/projects",
                requester,
                json={
                    "title": "Which animal is in the photo?",
                    "description": "Label each photo as cat, dog or bird.",
                    "instructions": "# Guidelines\nPick the animal that fills most of the photo.",
                    "keywords": ["image", "classification", "animals"],
                    "task_type": "classification",
                    "labels": LABELS,
                    "reward": REWARD,
                    "assignments_per_task": ANSWERS_PER_TASK,
                    "assignment_duration_seconds": 600,
                    "lifetime_seconds": 86400,
                    "auto_approve_seconds": 86400,
                    "estimated_seconds_per_assignment": 15,
                    "qualification_requirements": [
                        {
                            "qualification_type_id": qtype["id"],
                            "comparator": "gte",
                            "values": [80],
                            "guard": "accept",
                        }
                    ],
                },
            )
        ).json()
        pid = project["id"]
        report.ids.update(
            project=pid,
            requester=requester.id,
            alice=alice.id,
            bob=bob.id,
            carol=carol.id,
            qualification_type=qtype["id"],
        )
        uploaded = await api.call(
            "tasks",
            "POST",
            f"/v1/projects/{pid}/tasks",
            requester,
            json={
                "tasks": [
                    {"input": {"image_url": u}, "external_id": u.rsplit("/", 1)[1]} for u in truth
                ]
            },
        )
        task_url = dict(zip(uploaded.json()["task_ids"], truth, strict=True))
        await api.call("tasks", "POST", f"/v1/projects/{pid}/publish", requester)
        balance = (await api.call("payments", "GET", "/v1/balance", requester)).json()
        say(
            f"4. Project published: {TASKS} photos x {ANSWERS_PER_TASK} answers at ${REWARD} "
            f"(fee ${project['fee_per_assignment']} each); reserved ${balance['reserved']}"
        )

        for w, answers in ((alice, GOOD_ANSWERS), (bob, GOOD_ANSWERS), (carol, BAD_ANSWERS)):
            result = await _take_test(api, w, qtype["id"], answers)
            report.qualified[w.name] = result.get("status") == "granted" and result["score"] >= 80
            say(f"5. {w.name} took the test: {result.get('status')}, score {result.get('score')}")
        refused = await api.call(
            "tasks", "POST", f"/v1/work/projects/{pid}/accept", carol, expect=403
        )
        report.refused_code = refused.json()["code"]
        say(f"6. Carol tried to take work: refused ({report.refused_code})")

        done_alice = await _label_until_done(api, alice, pid, truth, 0.95, rng)
        done_bob = await _label_until_done(api, bob, pid, truth, 0.85, rng)
        say(f"7. Alice labeled {len(done_alice)} photos, Bob {len(done_bob)}")

        submitted = await _all_pages(
            api, "tasks", f"/v1/projects/{pid}/assignments", requester, status="submitted"
        )
        # Reject one of Bob's answers, preferably one that disagrees with the ground truth.
        bobs = [a for a in submitted if a["worker_id"] == bob.id]
        wrong = [a for a in bobs if a["answer"]["label"] != truth[task_url[a["task_id"]]]]
        rejected = wrong[0] if wrong else bobs[-1]
        report.rejected_assignment = rejected["id"]
        report.reopened_task = rejected["task_id"]
        review = await api.call(
            "tasks",
            "POST",
            "/v1/assignments/review",
            requester,
            json={
                "approve": [{"id": a["id"]} for a in submitted if a["id"] != rejected["id"]],
                "reject": [
                    {
                        "id": rejected["id"],
                        "feedback": "The photo shows a different animal; please look again.",
                    }
                ],
            },
        )
        outcomes = review.json()["results"]
        failed = [r for r in outcomes if r["status"] != "ok"]
        if failed:
            raise DemoError(f"review failed for {failed[:3]}")
        say(
            f"8. {requester.name} approved {len(outcomes) - 1} answers and rejected one of Bob's "
            "with feedback (its slot reopens)"
        )

        await api.call(
            "payments",
            "POST",
            "/v1/bonuses",
            requester,
            json={
                "assignment_id": next(a["id"] for a in submitted if a["worker_id"] == alice.id),
                "amount": BONUS,
                "reason": "Consistently careful labels, thank you!",
            },
            headers={"Idempotency-Key": f"demo-bonus-{tag}"},
        )
        say(f"9. {requester.name} paid Alice a ${BONUS} bonus")

        await asyncio.sleep(RETRY_DELAY_SECONDS + 0.2)
        result = await _take_test(api, carol, qtype["id"], GOOD_ANSWERS)
        report.qualified["Carol (retake)"] = result.get("status") == "granted"
        done_carol = await _label_until_done(
            api, carol, pid, truth, 0.9, rng, stop_at_task=report.reopened_task
        )
        if report.reopened_task in done_carol:
            report.reopened_task_filled_by = "Carol"
        say(
            f"10. Carol retook the test ({result.get('status')}, score {result.get('score')}) and "
            f"labeled {len(done_carol)} photos, including the reopened one: "
            f"{report.reopened_task in done_carol}"
        )
        carol_work = await _all_pages(
            api, "tasks", f"/v1/projects/{pid}/assignments", requester, status="submitted"
        )
        if carol_work:
            await api.call(
                "tasks",
                "POST",
                "/v1/assignments/review",
                requester,
                json={"approve": [{"id": a["id"]} for a in carol_work], "reject": []},
            )

        async def payouts_settled() -> bool:
            if not internal_token:
                await asyncio.sleep(2)
                return True
            stats = (
                await api.call(
                    "tasks",
                    "GET",
                    "/internal/outbox/stats",
                    headers={"X-Internal-Token": internal_token},
                )
            ).json()
            return stats.get("pending", 0) == 0

        await _wait_until(payouts_settled, "payouts to reach the workers")

        await api.call(
            "payments",
            "POST",
            "/v1/withdrawals",
            alice,
            json={"amount": WITHDRAWAL},
            headers={"Idempotency-Key": f"demo-withdrawal-{tag}"},
        )

        async def withdrawal_paid() -> bool:
            items = (await api.call("payments", "GET", "/v1/withdrawals", alice)).json()["items"]
            return bool(items) and items[0]["status"] == "paid"

        await _wait_until(withdrawal_paid, "the withdrawal to be paid")
        say(f"11. Alice withdrew ${WITHDRAWAL} (paid by the test payout provider)")

        results = (
            await api.call(
                "tasks", "GET", f"/v1/projects/{pid}/results", requester, params={"format": "json"}
            )
        ).json()
        report.results = results
        agreements = [
            r["aggregate"]["agreement"] for r in results if r["aggregate"]["agreement"] is not None
        ]
        report.mean_agreement = round(sum(agreements) / len(agreements), 3) if agreements else None
        correct = sum(
            1
            for r in results
            if r["aggregate"]["answer"]
            and r["aggregate"]["answer"].get("label") == truth[r["input"]["image_url"]]
        )
        say(
            f"12. Results downloaded: {len(results)} photos, consensus matches the truth on "
            f"{correct}, mean agreement {report.mean_agreement}"
        )

        await api.call("tasks", "POST", f"/v1/projects/{pid}/close", requester)

        async def released() -> bool:
            bal = (await api.call("payments", "GET", "/v1/balance", requester)).json()
            return cents(bal["reserved"]) == 0

        await _wait_until(released, "the unused reservation to be released")
        say("13. Project closed; money for slots nobody filled went back to the requester")

        await _hourly_story(api, tag, say, report, payouts_settled)
        await _levels_and_appeal_story(api, tag, say, report, payouts_settled)

        # ---- the summary --------------------------------------------------------------
        report.project = (await api.call("tasks", "GET", f"/v1/projects/{pid}", requester)).json()
        report.requester_balance = (
            await api.call("payments", "GET", "/v1/balance", requester)
        ).json()
        for w in (alice, bob, carol):
            report.worker_balances[w.name] = (
                await api.call("payments", "GET", "/v1/balance", w)
            ).json()
            report.earnings[w.name] = (await api.call("payments", "GET", "/v1/earnings", w)).json()
            report.approval_rates[w.name] = (
                await api.call("workers", "GET", f"/v1/workers/{w.id}", requester)
            ).json()
            mine = await _all_pages(api, "tasks", "/v1/workers/me/assignments", w)
            counts: dict[str, int] = {}
            for a in mine:
                counts[a["status"]] = counts.get(a["status"], 0) + 1
            report.assignments_by_worker[w.name] = counts
        fee = cents(project["fee_per_assignment"])
        approved_total = sum(c.get("approved", 0) for c in report.assignments_by_worker.values())
        bonus_fee = max(1, (cents(BONUS) * 20 + 50) // 100)
        report.platform_fees_cents = approved_total * fee + bonus_fee
        if internal_token:
            report.ledger_check = (
                await api.call(
                    "payments",
                    "GET",
                    "/internal/ledger/check",
                    headers={"X-Internal-Token": internal_token},
                )
            ).json()
        _print_summary(report, say)
        return report
    finally:
        await api.close()


async def _hourly_story(
    api: Api,
    tag: str,
    say: Callable[[str], None],
    report: DemoReport,
    payouts_settled: Callable[[], Any],
) -> None:
    """Hourly work: a transcription project at $18.00/h and one worker's timesheet."""
    studio, erin = Person("Dana", "requester"), Person("Erin", "worker")
    await _sign_up(api, studio, tag, country="US")
    await _sign_up(api, erin, tag, country="IE", languages=["en"])
    await api.call(
        "payments",
        "POST",
        "/v1/deposits",
        studio,
        json={"amount": HOURLY_DEPOSIT},
        headers={"Idempotency-Key": f"demo-hourly-deposit-{tag}"},
    )
    project = (
        await api.call(
            "tasks",
            "POST",
            "/v1/projects",
            studio,
            json={
                "title": "Transcribe short support calls",
                "description": "Type what the caller says.",
                "instructions": "Verbatim; mark unclear words as [inaudible].",
                "keywords": ["audio", "transcription"],
                "task_type": "transcription",
                "pay_model": "hourly",
                "hourly_rate": HOURLY_RATE,
                "budget_hours": HOURLY_BUDGET_HOURS,
                "max_hours_per_worker_per_week": 20,
                "idle_timeout_seconds": 300,
                "assignment_duration_seconds": 900,
                "lifetime_seconds": 86_400,
                "auto_approve_seconds": 86_400,
            },
            expect=(201,),
        )
    ).json()
    pid = project["id"]
    clips = [{"input": {"audio_url": f"https://audio.example/call-{i}.mp3"}} for i in range(3)]
    await api.call(
        "tasks", "POST", f"/v1/projects/{pid}/tasks", studio, json={"tasks": clips}, expect=(201,)
    )
    project = (await api.call("tasks", "POST", f"/v1/projects/{pid}/publish", studio)).json()
    say(
        f"14. {studio.name} published an hourly transcription project at ${HOURLY_RATE}/h: "
        f"{HOURLY_BUDGET_HOURS} h budget, ${project['money']['reserved']} reserved (pay + fee)"
    )
    session = (
        await api.call("tasks", "POST", f"/v1/work/projects/{pid}/sessions", erin, expect=(201,))
    ).json()
    work = (
        await api.call("tasks", "POST", f"/v1/work/projects/{pid}/accept", erin, expect=(201,))
    ).json()
    for beat in range(HOURLY_BEATS):
        await asyncio.sleep(1.0)
        await api.call("tasks", "POST", f"/v1/work/sessions/{session['id']}/heartbeat", erin)
        if beat == 1:
            await api.call(
                "tasks",
                "POST",
                f"/v1/assignments/{work['assignment_id']}/submit",
                erin,
                json={"answer": {"text": "Hello, my order never arrived."}},
            )
    session = (
        await api.call("tasks", "POST", f"/v1/work/sessions/{session['id']}/end", erin)
    ).json()
    report.hourly_session = session
    say(
        f"15. Erin worked in a session: {session['activity_events']} activity events, "
        f"{session['seconds_worked']} s measured by the server (one clip transcribed)"
    )
    await api.call("tasks", "POST", f"/v1/assignments/{work['assignment_id']}/approve", studio)
    await api.call("tasks", "POST", f"/v1/projects/{pid}/close", studio)
    sheets = (await api.call("tasks", "GET", f"/v1/projects/{pid}/timesheets", studio)).json()
    sheet = sheets["items"][0]
    approved = (
        await api.call(
            "tasks",
            "POST",
            f"/v1/projects/{pid}/timesheets/{sheet['id']}/approve",
            studio,
            headers={"Idempotency-Key": f"demo-timesheet-{tag}"},
        )
    ).json()
    report.hourly_timesheet = approved
    say(
        f"16. {studio.name} closed the project and approved Erin's timesheet for the week of "
        f"{approved['week_start']}: {approved['seconds_worked']} s x ${HOURLY_RATE}/h = "
        f"${approved['paid']} (fee ${approved['fee']}; answers {approved['answers_submitted']} "
        f"submitted, {approved['answers_approved']} approved)"
    )

    async def hourly_settled() -> bool:
        bal = (await api.call("payments", "GET", "/v1/balance", studio)).json()
        return cents(bal["reserved"]) == 0 and bool(await payouts_settled())

    await _wait_until(hourly_settled, "the timesheet's payout and the budget's release")
    report.hourly_project = (await api.call("tasks", "GET", f"/v1/projects/{pid}", studio)).json()
    report.hourly_requester_balance = (
        await api.call("payments", "GET", "/v1/balance", studio)
    ).json()
    report.hourly_worker_balance = (await api.call("payments", "GET", "/v1/balance", erin)).json()
    report.hourly_worker_earnings = (await api.call("payments", "GET", "/v1/earnings", erin)).json()
    say(
        f"17. Erin was paid ${report.hourly_worker_balance['available']}; {studio.name} spent "
        f"${report.hourly_requester_balance['spent']}, the rest of the budget went back"
    )


async def _levels_and_appeal_story(
    api: Api,
    tag: str,
    say: Callable[[str], None],
    report: DemoReport,
    payouts_settled: Callable[[], Any],
) -> None:
    """Levels, training and fair review: Femi climbs from level 0 to 1 and wins an appeal."""
    globex, femi = Person("Globex", "requester"), Person("Femi", "worker")
    await _sign_up(api, globex, tag, country="GB")
    await _sign_up(api, femi, tag, country="NG", languages=["en"])
    await api.call(
        "payments",
        "POST",
        "/v1/deposits",
        globex,
        json={"amount": LEVEL_DEPOSIT},
        headers={"Idempotency-Key": f"demo-level-deposit-{tag}"},
    )
    report.ids.update(globex=globex.id, femi=femi.id)
    report.level_before = (await api.call("workers", "GET", "/v1/workers/me/level", femi)).json()
    nxt = report.level_before["next_level"]
    say(
        f"18. Femi signed up: level {report.level_before['level']} "
        f"({report.level_before['name']}); for level {nxt['level']} ({nxt['name']}): "
        + "; ".join(t["text"] for t in nxt["thresholds"])
    )

    # The qualification type the training grants (no test of its own: the training is it).
    basics = (
        await api.call(
            "workers",
            "POST",
            "/v1/qualification-types",
            globex,
            json={
                "name": f"Sentiment basics {tag}",
                "description": "Granted by passing Globex's sentiment training.",
                "keywords": ["sentiment", "training"],
                "retry_delay_seconds": 3600,
                "status": "active",
            },
        )
    ).json()
    report.ids.update(sentiment_basics=basics["id"])

    sentiment = {
        "task_type": "sentiment",
        "assignments_per_task": 1,
        "assignment_duration_seconds": 600,
        "lifetime_seconds": 86_400,
        "auto_approve_seconds": 86_400,
        "keywords": ["sentiment", "reviews"],
    }
    training = (
        await api.call(
            "tasks",
            "POST",
            "/v1/projects",
            globex,
            json={
                **sentiment,
                "title": "Sentiment practice",
                "description": "Practice with instant feedback; passing unlocks paid work.",
                "instructions": "Is the review positive, negative or neutral?",
                "kind": "training",
                "reward": "0.00",
                "training": {
                    "qualification_type_id": basics["id"],
                    "min_training_answers": TRAINING_ANSWERS,
                    "pass_accuracy": TRAINING_PASS,
                },
            },
            expect=(201,),
        )
    ).json()
    tid = training["id"]
    await api.call(
        "tasks",
        "POST",
        f"/v1/projects/{tid}/tasks",
        globex,
        json={
            "tasks": [
                {"input": {"text": text}, "gold_answer": {"label": label}, "explanation": why}
                for text, label, why in TRAINING_TASKS
            ]
        },
        expect=(201,),
    )
    await api.call("tasks", "POST", f"/v1/projects/{tid}/publish", globex)
    gold = {text: label for text, label, _ in TRAINING_TASKS}
    for n in range(TRAINING_ANSWERS):  # right, right, right, then one wrong: 75%
        work = (
            await api.call("tasks", "POST", f"/v1/work/projects/{tid}/accept", femi, expect=201)
        ).json()
        right = gold[work["input"]["text"]]
        label = right if n < TRAINING_ANSWERS - 1 else next(x for x in SENTIMENTS if x != right)
        done = (
            await api.call(
                "tasks",
                "POST",
                f"/v1/assignments/{work['assignment_id']}/submit",
                femi,
                json={"answer": {"label": label}},
            )
        ).json()
        report.training_feedback.append(done["training"])
    report.training_progress = report.training_feedback[-1]["progress"]
    wrong = report.training_feedback[-1]
    say(
        f"19. Femi trained on {TRAINING_ANSWERS} practice reviews with instant feedback (last "
        f'one wrong: expected {wrong["expected_answer"]["label"]}, "{wrong["explanation"]}"): '
        f"{report.training_progress['status']} at {report.training_progress['accuracy']}%"
    )

    async def granted() -> bool:
        quals = await _all_pages(api, "workers", "/v1/workers/me/qualifications", femi)
        value = next(
            (q["value"] for q in quals if q["qualification_type_id"] == basics["id"]), None
        )
        report.training_grant_value = value
        level = (await api.call("workers", "GET", "/v1/workers/me/level", femi)).json()
        report.level_trained = level
        return value is not None and level["figures"]["tests_passed"] > 0

    await _wait_until(granted, "the training's qualification to be granted")
    trained = {t["threshold"]: t["text"] for t in report.level_trained["next_level"]["thresholds"]}
    say(
        f"20. Femi was granted 'Sentiment basics' with value {report.training_grant_value}; "
        f"still level {report.level_trained['level']}: {trained['tests_passed']}, "
        f"{trained['approved_answers']}"
    )

    tiered = (
        await api.call(
            "tasks",
            "POST",
            "/v1/projects",
            globex,
            json={
                **sentiment,
                "title": "Product review sentiment",
                "description": "Paid: label real product reviews.",
                "instructions": "Is the review positive, negative or neutral?",
                "reward": LEVEL_REWARD,
                "reward_by_level": {"1": LEVEL_1_REWARD},
                "qualification_requirements": [
                    {
                        "qualification_type_id": basics["id"],
                        "comparator": "gte",
                        "values": [TRAINING_PASS],
                        "guard": "accept",
                    }
                ],
            },
            expect=(201,),
        )
    ).json()
    pid = tiered["id"]
    report.ids.update(training_project=tid, tiered_project=pid)
    reviews = [
        {"input": {"text": f"Review #{i}: {'love it' if i % 2 else 'meh, it broke'}."}}
        for i in range(LEVEL_TASKS)
    ]
    await api.call(
        "tasks", "POST", f"/v1/projects/{pid}/tasks", globex, json={"tasks": reviews}, expect=201
    )
    await api.call("tasks", "POST", f"/v1/projects/{pid}/publish", globex)
    report.tiered_reserved_at_publish = (
        await api.call("payments", "GET", "/v1/balance", globex)
    ).json()["reserved"]
    say(
        f"21. Globex published {LEVEL_TASKS} paid reviews at ${LEVEL_REWARD}, ${LEVEL_1_REWARD} "
        f"for level 1+ (reserved at the highest tier: ${report.tiered_reserved_at_publish})"
    )

    rewards = report.femi_accept_rewards  # as fixed at accept, in order

    async def label(n: int) -> list[str]:
        ids = []
        for _ in range(n):
            work = (
                await api.call("tasks", "POST", f"/v1/work/projects/{pid}/accept", femi, expect=201)
            ).json()
            text = work["input"]["text"]
            await api.call(
                "tasks",
                "POST",
                f"/v1/assignments/{work['assignment_id']}/submit",
                femi,
                json={"answer": {"label": "positive" if "love" in text else "negative"}},
            )
            ids.append(work["assignment_id"])
            rewards.append(work["reward"])
        return ids

    first = await label(LEVEL_1_APPROVED_ANSWERS)
    await api.call(
        "tasks",
        "POST",
        "/v1/assignments/review",
        globex,
        json={"approve": [{"id": i} for i in first], "reject": []},
    )

    async def climbed() -> bool:
        level = (await api.call("workers", "GET", "/v1/workers/me/level", femi)).json()
        report.level_after = level
        return level["level"] >= 1

    await _wait_until(climbed, "Femi's level to be recomputed", seconds=60)
    after = report.level_after
    say(
        f"22. Globex approved Femi's {len(first)} answers: Femi is now level {after['level']} "
        f"({after['name']}): {after['figures']['approved_answers']} approved answers, "
        f"approval rate {after['figures']['approval_rate']}%, "
        f"{after['figures']['tests_passed']} test(s) passed"
    )

    kept, contested = await label(2)
    await api.call("tasks", "POST", f"/v1/assignments/{kept}/approve", globex)
    await api.call(
        "tasks",
        "POST",
        f"/v1/assignments/{contested}/reject",
        globex,
        json={"feedback": "This review reads as negative to us."},
    )
    report.appeal_open = (
        await api.call(
            "tasks",
            "POST",
            f"/v1/assignments/{contested}/appeal",
            femi,
            json={"message": APPEAL_MESSAGE},
            headers={"Idempotency-Key": f"demo-appeal-{tag}"},
            expect=201,
        )
    ).json()
    report.appeal_listed = await _all_pages(
        api, "tasks", "/v1/assignments/appeals", globex, status="open"
    )
    report.appeal = (
        await api.call(
            "tasks",
            "POST",
            f"/v1/assignments/{contested}/appeal/overturn",
            globex,
            json={"feedback": "You are right, sorry: approved."},
            headers={"Idempotency-Key": f"demo-overturn-{tag}"},
        )
    ).json()
    say(
        f"23. At level 1 Femi's next answers were fixed at ${rewards[-1]} each at accept (the "
        f"first {len(first)}: ${rewards[0]}); Globex rejected one, Femi appealed "
        f'("{APPEAL_MESSAGE}"), and Globex overturned the appeal: {report.appeal["status"]}, '
        "paid like an override"
    )

    await api.call("tasks", "POST", f"/v1/projects/{pid}/close", globex)
    await api.call("tasks", "POST", f"/v1/projects/{tid}/close", globex)

    async def settled() -> bool:
        bal = (await api.call("payments", "GET", "/v1/balance", globex)).json()
        return cents(bal["reserved"]) == 0 and bool(await payouts_settled())

    await _wait_until(settled, "Globex's payouts and releases")
    report.tiered_project = (await api.call("tasks", "GET", f"/v1/projects/{pid}", globex)).json()
    report.femi_assignments = await _all_pages(api, "tasks", "/v1/workers/me/assignments", femi)
    report.femi_profile = (
        await api.call("workers", "GET", f"/v1/workers/{femi.id}", globex)
    ).json()
    report.femi_balance = (await api.call("payments", "GET", "/v1/balance", femi)).json()
    report.femi_earnings = (await api.call("payments", "GET", "/v1/earnings", femi)).json()
    report.globex_balance = (await api.call("payments", "GET", "/v1/balance", globex)).json()
    say(
        f"24. Femi earned ${report.femi_balance['available']}; Globex spent "
        f"${report.globex_balance['spent']}, the unused reservation went back"
    )


def _print_summary(r: DemoReport, say: Callable[[str], None]) -> None:
    b = r.requester_balance
    say("")
    say("=== Summary ===")
    say(
        f"Requester: available ${b['available']}, reserved ${b['reserved']}, spent ${b['spent']} "
        f"(deposited ${DEPOSIT})"
    )
    say(f"Platform fees earned: ${dollars(r.platform_fees_cents)}")
    say(
        f"{'worker':8} {'approved':>8} {'rejected':>8} {'available':>10} {'withdrawn':>10} "
        f"{'earned':>8} {'hours':>7} {'$/hour':>8} {'approval':>8}"
    )
    for name, bal in r.worker_balances.items():
        counts = r.assignments_by_worker[name]
        e = r.earnings[name]
        rate = r.approval_rates[name].get("approval_rate")
        say(
            f"{name:8} {counts.get('approved', 0):>8} {counts.get('rejected', 0):>8} "
            f"{bal['available']:>10} {bal['withdrawn']:>10} {e['total']:>8} "
            f"{e['hours_worked']!s:>7} {e['hourly_rate']!s:>8} {rate!s:>7}%"
        )
    say(f"Consensus: {len(r.results)} photos, mean agreement {r.mean_agreement}")
    if r.hourly_timesheet:
        t, hb = r.hourly_timesheet, r.hourly_requester_balance
        say(
            f"Hourly: Erin {t['seconds_worked']} s at ${HOURLY_RATE}/h -> paid ${t['paid']} "
            f"(fee ${t['fee']}); Dana spent ${hb['spent']}, available ${hb['available']} "
            f"(deposited ${HOURLY_DEPOSIT})"
        )
    if r.level_after:
        fb = r.femi_balance
        say(
            f"Levels: Femi level {r.level_before['level']} -> {r.level_after['level']} "
            f"(training {r.training_progress.get('accuracy')}%, granted "
            f"{r.training_grant_value}); appeal {r.appeal.get('status')}; "
            f"earned ${fb['available']}, Globex spent ${r.globex_balance['spent']}"
        )
    if r.ledger_check:
        c = r.ledger_check
        say(
            f"Ledger check: ok={c.get('ok')} debits={c.get('total_debits')} "
            f"credits={c.get('total_credits')} negative={c.get('accounts_negative')} "
            f"reserved_mismatch={c.get('reserved_mismatch')}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    host = os.environ.get("HOST", "127.0.0.1")
    for svc, port in (("tasks", 8001), ("workers", 8002), ("payments", 8003)):
        default = f"http://{host}:{os.environ.get(svc.upper() + '_PORT', port)}"
        parser.add_argument(f"--{svc}-url", default=default)
        # Behind a gateway (`run --replicas N`), /internal/* is on the replicas, not the gateway.
        parser.add_argument(f"--{svc}-internal-url", default=None)
    parser.add_argument("--internal-token", default=os.environ.get("INTERNAL_TOKEN"))
    args = parser.parse_args(argv)
    token = args.internal_token
    token_file = Path(__file__).resolve().parent.parent / ".data" / "internal_token"
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    urls = {"tasks": args.tasks_url, "workers": args.workers_url, "payments": args.payments_url}
    internal = {svc: getattr(args, f"{svc}_internal_url") or url for svc, url in urls.items()}
    try:
        asyncio.run(run_demo(urls, token, internal_urls=internal))
    except (DemoError, httpx.HTTPError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
