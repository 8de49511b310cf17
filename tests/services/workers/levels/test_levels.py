"""The worker ladder: figures from measured history, rises at once, falls after a grace period.

Figures are built with bulk inserts of decided answers (tests/fixtures/levels.py: hundreds to
thousands per worker) and qualification tests passed through the public API; the level is
recomputed as the background jobs do it (`settle`), and read back through the public API.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest

from services.workers.clock import utcnow
from services.workers.levels.ladder import Ladder
from services.workers.levels.loop import apply_due_falls, recompute_queued, run_once
from services.workers.levels.service import recompute_worker
from services.workers.stats.compaction import compact_all
from shared.eligibility import LEVEL_TYPE_ID
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.levels import add_answers, my_level, pass_tests, settle
from tests.fixtures.payments import INTERNAL
from tests.fixtures.tasks import (
    accepted,
    approve,
    cat_tasks,
    published_project,
    reject,
    submit,
)
from tests.fixtures.workers import (
    ALL_CORRECT,
    SAMPLE_KEY,
    SAMPLE_TEST,
    create_type,
    frozen_clock,
    my_qualifications,
    start,
)
from tests.fixtures.workers import (
    submit as submit_attempt,
)

APPROVED, REJECTED = "approved", "rejected"


async def test_the_ladder_is_listed_to_any_caller(workers_client: httpx.AsyncClient) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    for caller in (requester, worker):
        resp = await workers_client.get("/v1/levels", headers=caller.headers)
        assert resp.status_code == 200, resp.text
        ladder = resp.json()
        assert ladder["qualification_type_id"] == LEVEL_TYPE_ID
        assert [(lv["level"], lv["name"]) for lv in ladder["levels"]] == [
            (0, "entry"),
            (1, "intermediate"),
            (2, "advanced"),
            (3, "expert"),
        ]
        assert ladder["levels"][0]["thresholds"] is None
        assert ladder["levels"][1]["thresholds"] == {
            "approved_answers": 50,
            "approval_rate": 90,
            "gold_accuracy": 70,
            "tests_passed": 1,
        }
        assert ladder["levels"][3]["thresholds"]["approved_answers"] == 2000
        assert (ladder["approval_window"], ladder["gold_window"]) == (1000, 200)
        assert ladder["grace_period_seconds"] == 7 * 86_400
    resp = await workers_client.get("/v1/levels")
    assert resp.status_code == 401 and resp.json()["code"] == "unauthorized", resp.text


async def test_my_level_is_for_workers_only(workers_client: httpx.AsyncClient) -> None:
    requester = await create_requester(workers_client)
    resp = await workers_client.get("/v1/workers/me/level", headers=requester.headers)
    assert resp.status_code == 403 and resp.json()["code"] == "wrong_role", resp.text
    assert (await workers_client.get("/v1/workers/me/level")).status_code == 401


async def test_a_new_worker_is_entry_and_sees_how_far_level_1_is(
    workers_client: httpx.AsyncClient,
) -> None:
    worker = await create_worker(workers_client)
    mine = await my_level(workers_client, worker)
    assert (mine["level"], mine["name"], mine["warning"], mine["history"]) == (0, "entry", None, [])
    assert mine["figures"] == {
        "approved_answers": 0,
        "approval_rate": None,
        "decided_in_window": 0,
        "gold_accuracy": None,
        "gold_answers_in_window": 0,
        "tests_passed": 0,
    }
    nxt = mine["next_level"]
    assert (nxt["level"], nxt["name"]) == (1, "intermediate")
    by_name = {t["threshold"]: t for t in nxt["thresholds"]}
    assert by_name["approved_answers"]["text"] == "0 of 50 approved answers"
    assert not by_name["approval_rate"]["met"] and by_name["approval_rate"]["current"] is None
    assert by_name["gold_accuracy"]["waived"] and by_name["gold_accuracy"]["met"]
    assert by_name["tests_passed"]["text"] == "0 of 1 qualification tests passed"
    quals = await my_qualifications(workers_client, worker)
    assert quals[LEVEL_TYPE_ID]["value"] == 0 and quals[LEVEL_TYPE_ID]["name"] == "system.level"


async def test_a_worker_climbs_through_every_level(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    app = apps["workers"]
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await add_answers(db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=49)
    await pass_tests(workers_client, requester, worker, 1)
    assert await settle(app, db, worker.id) == 0
    mine = await my_level(workers_client, worker)
    texts = {t["threshold"]: t["text"] for t in mine["next_level"]["thresholds"]}
    assert texts["approved_answers"] == "49 of 50 approved answers"
    assert texts["approval_rate"].startswith("100% of 90% approval rate (49 of 49 approved")
    assert texts["tests_passed"] == "1 of 1 qualification tests passed"

    await add_answers(db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=1)
    assert await settle(app, db, worker.id) == 1
    mine = await my_level(workers_client, worker)
    assert (mine["level"], mine["name"]) == (1, "intermediate")
    assert [(h["from_level"], h["to_level"]) for h in mine["history"]] == [(0, 1)]
    assert mine["since"] == mine["history"][0]["changed_at"]
    texts = {t["threshold"]: t["text"] for t in mine["next_level"]["thresholds"]}
    assert texts["approved_answers"] == "50 of 500 approved answers"
    assert texts["tests_passed"] == "1 of 2 qualification tests passed"

    # Level 2: 500 approved (a 95% rate over the window), 2 tests, gold at 80% once judged.
    await add_answers(db, worker_id=worker.id, requester_id=requester.id, status=REJECTED, count=20)
    await add_answers(
        db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=430
    )
    await add_answers(
        db,
        worker_id=worker.id,
        requester_id=requester.id,
        status=APPROVED,
        count=20,
        gold_correct=True,
    )
    await add_answers(
        db,
        worker_id=worker.id,
        requester_id=requester.id,
        status=APPROVED,
        count=5,
        gold_correct=False,
    )
    await pass_tests(workers_client, requester, worker, 1)
    assert await settle(app, db, worker.id) == 2
    figures = (await my_level(workers_client, worker))["figures"]
    assert figures == {
        "approved_answers": 505,
        "approval_rate": (100 * 505) // 525,
        "decided_in_window": 525,
        "gold_accuracy": 80,
        "gold_answers_in_window": 25,
        "tests_passed": 2,
    }

    # Level 3 asks 90% gold: the worker's 80% holds it at 2 with everything else met.
    await add_answers(
        db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=1_500
    )
    await pass_tests(workers_client, requester, worker, 1)
    assert await settle(app, db, worker.id) == 2
    mine = await my_level(workers_client, worker)
    unmet = [t["threshold"] for t in mine["next_level"]["thresholds"] if not t["met"]]
    assert unmet == ["gold_accuracy"]
    await add_answers(
        db,
        worker_id=worker.id,
        requester_id=requester.id,
        status=APPROVED,
        count=25,
        gold_correct=True,
    )  # 45 of 50 gold answers right: 90%
    assert await settle(app, db, worker.id) == 3
    mine = await my_level(workers_client, worker)
    assert (mine["level"], mine["name"], mine["next_level"]) == (3, "expert", None)
    assert [(h["from_level"], h["to_level"]) for h in mine["history"]] == [(2, 3), (1, 2), (0, 1)]
    quals = await my_qualifications(workers_client, worker)
    assert quals[LEVEL_TYPE_ID]["value"] == 3


async def test_a_rise_skips_levels_at_once(workers_client: httpx.AsyncClient, apps, db) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await pass_tests(workers_client, requester, worker, 2)  # not enough alone: still level 0
    await add_answers(  # one transaction: the figures jump from level 0's to level 2's
        db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=600
    )
    assert await settle(apps["workers"], db, worker.id) == 2
    history = (await my_level(workers_client, worker))["history"]
    assert [(h["from_level"], h["to_level"]) for h in history] == [(0, 2)]


async def test_standing_excluded_answers_never_count(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await pass_tests(workers_client, requester, worker, 1)
    # Training answers and capped rejections: approved, rejected and wrong gold answers that the
    # worker's standing ignores.
    for status, gold in ((APPROVED, None), (REJECTED, None), (APPROVED, False)):
        await add_answers(
            db,
            worker_id=worker.id,
            requester_id=requester.id,
            status=status,
            count=300,
            standing_excluded=True,
            gold_correct=gold,
        )
    assert await settle(apps["workers"], db, worker.id) == 0
    figures = (await my_level(workers_client, worker))["figures"]
    assert figures == {
        "approved_answers": 0,
        "approval_rate": None,
        "decided_in_window": 0,
        "gold_accuracy": None,
        "gold_answers_in_window": 0,
        "tests_passed": 1,
    }
    await add_answers(db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=50)
    assert await settle(apps["workers"], db, worker.id) == 1
    figures = (await my_level(workers_client, worker))["figures"]
    assert (figures["approved_answers"], figures["approval_rate"]) == (50, 100)
    assert figures["gold_answers_in_window"] == 0


async def test_the_approval_rate_is_taken_over_the_last_1000_decided_answers(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await pass_tests(workers_client, requester, worker, 1)
    add = lambda status, n: add_answers(  # noqa: E731
        db, worker_id=worker.id, requester_id=requester.id, status=status, count=n
    )
    await add(REJECTED, 400)  # old: outside the window once 1,000 newer answers are decided
    await add(APPROVED, 1_000)
    assert await settle(apps["workers"], db, worker.id) == 1
    figures = (await my_level(workers_client, worker))["figures"]
    assert (figures["approval_rate"], figures["decided_in_window"]) == (100, 1_000)
    await add(REJECTED, 101)  # the newest 1,000: 899 approved, 101 rejected: 89%
    assert await settle(apps["workers"], db, worker.id) == 1  # grace period: no fall yet
    mine = await my_level(workers_client, worker)
    assert mine["figures"]["approval_rate"] == 89
    assert [m["threshold"] for m in mine["warning"]["missed"]] == ["approval_rate"]
    assert mine["warning"]["missed"][0]["text"].startswith("89% of 90% approval rate (899 of 1,000")


async def test_gold_accuracy_is_taken_over_the_last_200_gold_answers(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await pass_tests(workers_client, requester, worker, 1)

    async def gold(correct: bool, n: int) -> None:
        await add_answers(
            db,
            worker_id=worker.id,
            requester_id=requester.id,
            status=APPROVED,
            count=n,
            gold_correct=correct,
        )

    await gold(False, 9)  # fewer than 10 gold answers: not judged yet
    await add_answers(db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=41)
    assert await settle(apps["workers"], db, worker.id) == 1
    mine = await my_level(workers_client, worker)
    gold_check = next(
        t for t in mine["next_level"]["thresholds"] if t["threshold"] == "gold_accuracy"
    )
    assert gold_check["waived"] and gold_check["current"] == 0

    other = await create_worker(workers_client)
    await pass_tests(workers_client, requester, other, 1)
    await add_answers(db, worker_id=other.id, requester_id=requester.id, status=APPROVED, count=50)
    await add_answers(
        db,
        worker_id=other.id,
        requester_id=requester.id,
        status=APPROVED,
        count=10,
        gold_correct=False,
    )
    assert await settle(apps["workers"], db, other.id) == 0  # judged now: 0%
    await add_answers(
        db,
        worker_id=other.id,
        requester_id=requester.id,
        status=APPROVED,
        count=200,
        gold_correct=True,
    )  # the 10 wrong ones fall out of the last 200
    assert await settle(apps["workers"], db, other.id) == 1
    figures = (await my_level(workers_client, other))["figures"]
    assert (figures["gold_accuracy"], figures["gold_answers_in_window"]) == (100, 200)


async def test_a_level_falls_only_after_the_grace_period_below_its_thresholds(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    app = apps["workers"]
    ladder = Ladder.from_settings(app.state.settings)
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    await pass_tests(workers_client, requester, worker, 1)
    add = lambda status, n: add_answers(  # noqa: E731
        db, worker_id=worker.id, requester_id=requester.id, status=status, count=n
    )
    await add(APPROVED, 90)
    with frozen_clock(app) as clock:
        t0 = clock.now
        assert await settle(app, db, worker.id) == 1

        await add(REJECTED, 20)  # 90 of 110: 81%
        assert await settle(app, db, worker.id) == 1
        warning = (await my_level(workers_client, worker))["warning"]
        assert warning["below_since"] == t0.isoformat().replace("+00:00", "Z")
        assert (warning["falls_to"], warning["falls_to_name"]) == (0, "entry")
        assert [m["threshold"] for m in warning["missed"]] == ["approval_rate"]
        falls_at = t0 + timedelta(days=7)
        assert warning["falls_at"] == falls_at.isoformat().replace("+00:00", "Z")

        clock.advance(7 * 86_400 - 1)  # a second before the end: still level 1
        await apply_due_falls(app.state.database, ladder, now=clock.now, batch=100)
        assert await settle(app, db, worker.id) == 1

        await add(APPROVED, 100)  # 190 of 210: 90%, back above: the warning ends
        assert await settle(app, db, worker.id) == 1
        assert (await my_level(workers_client, worker))["warning"] is None
        clock.advance(10)  # past the old falls_at: nothing falls, the grace period ended
        await apply_due_falls(app.state.database, ladder, now=clock.now, batch=100)
        assert (
            await db.fetchval("SELECT level FROM worker_levels WHERE worker_id = $1", worker.id)
            == 1
        )

        await add(REJECTED, 30)  # 190 of 240: 79%: a new grace period, from now
        t1 = clock.now
        assert await settle(app, db, worker.id) == 1
        warning = (await my_level(workers_client, worker))["warning"]
        assert warning["falls_at"] == (t1 + timedelta(days=7)).isoformat().replace("+00:00", "Z")

        clock.advance(7 * 86_400)  # the loop lets it fall, with nothing else happening
        done = 0
        for _ in range(20):  # the app's own loop may take the due row first
            done += await apply_due_falls(app.state.database, ladder, now=clock.now, batch=10)
            level = await db.fetchval(
                "SELECT level FROM worker_levels WHERE worker_id = $1", worker.id
            )
            if level == 0:
                break
        assert level == 0
        mine = await my_level(workers_client, worker)
        assert (mine["level"], mine["warning"]) == (0, None)
        assert mine["since"] == clock.now.isoformat().replace("+00:00", "Z")
        assert [(h["from_level"], h["to_level"]) for h in mine["history"]] == [(1, 0), (0, 1)]
        change = await db.fetchrow(
            "SELECT figures FROM worker_level_changes WHERE worker_id = $1 AND to_level = 0",
            worker.id,
        )
        decided_on = json.loads(change["figures"])
        assert (decided_on["window_decided"], decided_on["window_approved"]) == (240, 190)


async def test_the_loop_recomputes_touched_workers_only(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    app = apps["workers"]
    requester = await create_requester(workers_client)
    touched, untouched = await create_worker(workers_client), await create_worker(workers_client)
    await add_answers(
        db, worker_id=untouched.id, requester_id=requester.id, status=APPROVED, count=1
    )
    await settle(app, db, untouched.id)
    await _drain_queue(app, db, untouched.id)
    checked = await db.fetchval(
        "SELECT checked_at FROM worker_levels WHERE worker_id = $1", untouched.id
    )
    await pass_tests(workers_client, requester, touched, 1)
    # A passed test queues the worker (the app's own loop may have recomputed it already: only
    # a recompute writes a level row for a worker without answers).
    assert await db.fetchval(
        """SELECT EXISTS (SELECT 1 FROM worker_level_queue WHERE worker_id = $1)
               OR EXISTS (SELECT 1 FROM worker_levels WHERE worker_id = $1)""",
        touched.id,
    )
    await add_answers(
        db, worker_id=touched.id, requester_id=requester.id, status=APPROVED, count=50
    )
    for _ in range(50):  # the compaction queues the workers whose counts it folded
        await compact_all(app.state.database, batch=10_000)
        await run_once(app)
        level = await db.fetchval(
            "SELECT level FROM worker_levels WHERE worker_id = $1", touched.id
        )
        if level == 1:
            break
    assert level == 1
    assert (
        await db.fetchval("SELECT checked_at FROM worker_levels WHERE worker_id = $1", untouched.id)
        == checked
    )
    assert not await db.fetchval(
        "SELECT count(*) FROM worker_level_queue WHERE worker_id = ANY($1)",
        [touched.id, untouched.id],
    )


async def _queue_drained(db, worker_ids: list[str]) -> None:
    """Until no recompute of these workers is pending or in flight (a claimed row stays
    visible until its recompute commits)."""
    for _ in range(100):
        if not await db.fetchval(
            "SELECT count(*) FROM worker_level_queue WHERE worker_id = ANY($1)", worker_ids
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the workers stayed queued")


async def _drain_queue(app, db, worker_id: str) -> None:
    for _ in range(50):
        await run_once(app)
        if not await db.fetchval(
            "SELECT count(*) FROM worker_level_queue WHERE worker_id = $1", worker_id
        ):
            return
        await asyncio.sleep(0.05)  # the app's own loop holds the worker's row for a moment
    raise AssertionError("the worker stayed queued")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "level_2": {
                    "approved_answers": 10,
                    "approval_rate": 95,
                    "gold_accuracy": 80,
                    "tests_passed": 2,
                }
            },
            "must not decrease: approved_answers",
        ),
        (
            {
                "level_1": {
                    "approved_answers": 50,
                    "approval_rate": 101,
                    "gold_accuracy": 70,
                    "tests_passed": 1,
                }
            },
            "less than or equal to 100",
        ),
        ({"level_1": {"approved_answers": 50}}, "Field required"),
    ],
)
def test_bad_thresholds_are_refused_at_startup(env: dict, message: str) -> None:
    from pydantic import ValidationError

    from services.workers.settings import Settings

    with pytest.raises(ValidationError, match=message):
        Settings(database_url="postgresql://x@y/z", internal_token="t" * 20, **env)


async def test_answers_through_the_api_move_the_figures(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, payments_client, apps, db
) -> None:
    """Submit grades gold answers on the assignment; approve and reject feed the window."""
    requester = await create_requester(workers_client)
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=[*cat_tasks(2, gold_answer={"label": "cat"}), *cat_tasks(1)],
        requester=requester,
    )
    worker = await create_worker(workers_client)
    gold_tasks = set(project.task_ids[:2])
    done, gold_seen = [], 0
    for _ in range(3):  # one gold answer right, one wrong, one answer to a task without gold
        work = await accepted(tasks_client, worker, project.id)
        right = work["task_id"] in gold_tasks and gold_seen == 0
        gold_seen += work["task_id"] in gold_tasks
        answer = {"label": "cat" if right else "dog"}
        resp = await submit(tasks_client, worker, work["assignment_id"], answer)
        assert resp.status_code == 200, resp.text
        done.append(resp.json())
    graded = dict(
        await db.fetch(
            "SELECT task_id, gold_correct FROM assignments WHERE worker_id = $1", worker.id
        )
    )
    assert sorted(graded.values(), key=str) == [False, None, True]
    assert {t for t, ok in graded.items() if ok is not None} == gold_tasks
    first, second, third = done
    assert (await approve(tasks_client, requester, first["id"])).status_code == 200
    assert (await approve(tasks_client, requester, second["id"])).status_code == 200
    assert (await reject(tasks_client, requester, third["id"])).status_code == 200
    await settle(apps["workers"], db, worker.id)
    figures = (await my_level(workers_client, worker))["figures"]
    assert figures == {
        "approved_answers": 2,
        "approval_rate": 66,
        "decided_in_window": 3,
        "gold_accuracy": 50,
        "gold_answers_in_window": 2,
        "tests_passed": 0,
    }


async def _tests_passed(db, worker_id: str) -> list[tuple[str, str]]:
    return [
        (r["qualification_type_id"], r["via"])
        for r in await db.fetch(
            "SELECT qualification_type_id, via FROM worker_tests_passed WHERE worker_id = $1 "
            "ORDER BY passed_at, qualification_type_id",
            worker_id,
        )
    ]


async def test_what_counts_as_a_qualification_test_passed(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    # A scored test passed twice (a retake) counts once; a test scored 0 does not count.
    retakable = await create_type(
        workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY, retry_delay_seconds=0
    )
    for _ in range(2):
        started = await start(workers_client, worker, retakable["id"])
        assert started.status_code == 201, started.text
        done = await submit_attempt(
            workers_client, worker, started.json()["attempt_id"], ALL_CORRECT
        )
        assert done.json()["value"] == 100, done.text
    failed = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    started = await start(workers_client, worker, failed["id"])
    done = await submit_attempt(workers_client, worker, started.json()["attempt_id"], {"q1": "b"})
    assert done.json()["status"] == "granted" and done.json()["value"] == 0, done.text
    # A test reviewed by its owner counts once accepted; a plain request (no test) never does;
    # neither does an auto-granted type.
    reviewed = await create_type(workers_client, owner, test=SAMPLE_TEST)
    plain = await create_type(workers_client, owner)
    auto = await create_type(workers_client, owner, auto_grant=True)
    for qtype in (reviewed, plain):
        started = await start(workers_client, worker, qtype["id"])
        attempt_id = started.json()["attempt_id"]
        if qtype is reviewed:
            done = await submit_attempt(workers_client, worker, attempt_id, ALL_CORRECT)
            assert done.json()["status"] == "pending", done.text
        resp = await workers_client.post(
            f"/v1/qualification-requests/{attempt_id}/accept",
            json={"value": 80},
            headers=owner.headers,
        )
        assert resp.status_code == 200, resp.text
    assert (await start(workers_client, worker, auto["id"])).status_code == 201
    # A training project's pass arrives from the tasks service's outbox as a grant.
    trained = await create_type(workers_client, owner)
    message = {
        "key": f"grant:training:P:{worker.id}",
        "qualification_type_id": trained["id"],
        "worker_id": worker.id,
        "requester_id": owner.id,
        "project_id": "P",
        "value": 90,
    }
    for _ in range(2):  # delivered twice: counted once
        resp = await workers_client.post(
            "/internal/qualification-grants", json=message, headers=INTERNAL
        )
        assert resp.status_code == 200, resp.text

    assert await _tests_passed(db, worker.id) == [
        (retakable["id"], "test"),
        (reviewed["id"], "test"),
        (trained["id"], "training"),
    ]
    await settle(apps["workers"], db, worker.id)
    assert (await my_level(workers_client, worker))["figures"]["tests_passed"] == 3


async def test_concurrent_recomputes_decide_each_rise_once(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    """Several processes' loops (and a direct recompute) on the same queue: SKIP LOCKED splits
    the workers, the level row's lock serialises the rest, and each rise is recorded once."""
    app = apps["workers"]
    ladder = Ladder.from_settings(app.state.settings)
    requester = await create_requester(workers_client)
    climbers = list(await asyncio.gather(*(create_worker(workers_client) for _ in range(30))))
    for worker in climbers:
        await add_answers(
            db, worker_id=worker.id, requester_id=requester.id, status=APPROVED, count=50
        )
    await db.executemany(
        """INSERT INTO worker_tests_passed (worker_id, qualification_type_id, via, passed_at)
           VALUES ($1, 'T', 'test', now())""",
        [(w.id,) for w in climbers],
    )
    await db.executemany(
        "INSERT INTO worker_level_queue (worker_id) VALUES ($1) ON CONFLICT DO NOTHING",
        [(w.id,) for w in climbers],
    )

    async def direct(worker_id: str) -> int:
        async with app.state.database.transaction() as tx:
            return await recompute_worker(tx, ladder, worker_id=worker_id, now=utcnow())

    results = await asyncio.gather(
        recompute_queued(app.state.database, ladder, now=utcnow(), batch=7),
        recompute_queued(app.state.database, ladder, now=utcnow(), batch=7),
        direct(climbers[0].id),
        direct(climbers[-1].id),
    )
    assert results[2] == results[3] == 1
    await _queue_drained(db, [w.id for w in climbers])  # by these calls or the app's own loop
    levels = dict(
        await db.fetch(
            "SELECT worker_id, level FROM worker_levels WHERE worker_id = ANY($1)",
            [w.id for w in climbers],
        )
    )
    assert levels == {w.id: 1 for w in climbers}
    changes = await db.fetch(
        """SELECT worker_id, count(*) AS n FROM worker_level_changes
           WHERE worker_id = ANY($1) GROUP BY worker_id""",
        [w.id for w in climbers],
    )
    assert {r["worker_id"]: r["n"] for r in changes} == {w.id: 1 for w in climbers}
    assert not await db.fetchval(
        "SELECT count(*) FROM worker_level_queue WHERE worker_id = ANY($1)",
        [w.id for w in climbers],
    )
