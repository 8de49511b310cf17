"""Qualification tests: timed attempts, scoring by answer key, retakes, owner review, races."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest

from shared.eligibility import APPROVAL_RATE_TYPE_ID
from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import (
    ALL_CORRECT,
    SAMPLE_KEY,
    SAMPLE_TEST,
    create_type,
    frozen_clock,
    my_qualifications,
    start,
    submit,
)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _attempt_row(db, attempt_id: str) -> dict:
    return dict(await db.fetchrow("SELECT * FROM qualification_attempts WHERE id = $1", attempt_id))


# --------------------------------------------------------------------------- scoring


async def test_a_keyed_test_is_scored_at_once_and_granted(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    with frozen_clock(apps["workers"]) as clock:
        started = await start(workers_client, worker, qtype["id"])
        assert started.status_code == 201, started.text
        body = started.json()
        assert body["status"] == "started"
        assert _ts(body["deadline"]) == clock.now + timedelta(seconds=600)
        assert [q["id"] for q in body["questions"]] == ["q1", "q2", "q3", "q4"]
        assert "correct" not in started.text and "answer_key" not in body
        clock.advance(599)
        result = await submit(workers_client, worker, body["attempt_id"], ALL_CORRECT)
    assert result.status_code == 200, result.text
    assert result.json() == {
        "attempt_id": body["attempt_id"],
        "status": "granted",
        "score": 100,
        "value": 100,
        "points": 10,
        "max_points": 10,
    }
    quals = await my_qualifications(workers_client, worker)
    assert quals[qtype["id"]]["value"] == 100 and quals[qtype["id"]]["is_system"] is False
    row = await _attempt_row(db, body["attempt_id"])
    assert row["status"] == "granted" and row["points"] == 10


@pytest.mark.parametrize(
    ("answers", "points"),
    [
        ({}, 0),
        ({"q1": "b", "q2": ["two"], "q3": "Pariss", "q4": 41}, 0),
        ({"q1": "a"}, 1),
        ({"q2": ["two", "three", "four"]}, 0),  # superset is not the set
        ({"q2": ["three", "two"]}, 2),
        ({"q3": "paris"}, 3),
        ({"q3": "\tPARIS\n"}, 3),
        ({"q3": "Paris, France"}, 0),
        ({"q4": 42}, 4),
        ({"q4": 42.0}, 4),
        ({"q4": 42.5}, 0),
        ({"q1": "a", "q3": "Paris"}, 4),
    ],
)
async def test_each_question_kind_is_scored_by_its_rule(
    workers_client: httpx.AsyncClient, answers: dict, points: int
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    result = (await submit(workers_client, worker, attempt["attempt_id"], answers)).json()
    assert result["points"] == points and result["max_points"] == 10
    assert result["score"] == result["value"] == round(points * 10)  # percent of 10 points


@pytest.mark.parametrize(
    ("correct_count", "total", "expected"),
    [(1, 3, 33), (2, 3, 67), (1, 8, 13), (3, 8, 38), (0, 8, 0), (8, 8, 100)],
)
async def test_percentage_is_rounded_half_up(
    workers_client: httpx.AsyncClient, correct_count: int, total: int, expected: int
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    questions = [{"id": f"n{i}", "prompt": "1+1", "kind": "number"} for i in range(total)]
    key = {"answers": {f"n{i}": {"correct": 2} for i in range(total)}}
    qtype = await create_type(
        workers_client,
        owner,
        test={"questions": questions, "duration_seconds": 60},
        answer_key=key,
    )
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    answers = {f"n{i}": 2 if i < correct_count else 3 for i in range(total)}
    result = (await submit(workers_client, worker, attempt["attempt_id"], answers)).json()
    assert result["value"] == expected
    assert result["points"] == correct_count


async def test_sum_mapping_grants_the_summed_score(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(
        workers_client, owner, test=SAMPLE_TEST, answer_key={**SAMPLE_KEY, "mapping": "sum"}
    )
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    result = await submit(workers_client, worker, attempt["attempt_id"], {"q3": "paris", "q4": 42})
    assert result.json()["value"] == 7 and result.json()["score"] == 7
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == 7


@pytest.mark.parametrize(
    "answers",
    [
        {"q1": "zz"},
        {"q1": ["a"]},
        {"q2": "two"},
        {"q2": ["two", "two"]},
        {"q2": ["five"]},
        {"q3": 7},
        {"q4": "42"},
        {"q4": True},
        {"q9": "a"},
    ],
)
async def test_answers_that_do_not_fit_are_422_and_the_attempt_stays_open(
    workers_client: httpx.AsyncClient, db, answers: dict
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    before = await _attempt_row(db, attempt["attempt_id"])
    bad = await submit(workers_client, worker, attempt["attempt_id"], answers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_answers"
    assert bad.json()["errors"][0]["loc"][:2] == ["body", "answers"]
    assert await _attempt_row(db, attempt["attempt_id"]) == before
    good = await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    assert good.status_code == 200


async def test_an_attempt_is_graded_by_the_key_it_started_with(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    changed_key = {"answers": {"q1": {"correct": ["b"], "score": 1}}}
    resp = await workers_client.patch(
        f"/v1/qualification-types/{qtype['id']}",
        json={"answer_key": changed_key},
        headers=owner.headers,
    )
    assert resp.status_code == 200
    result = await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    assert result.json()["value"] == 100


# --------------------------------------------------------------------------- what workers see


async def test_workers_never_see_keys_or_other_workers_attempts(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    alice = await create_worker(workers_client)
    bob = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, alice, qtype["id"])).json()
    url = f"/v1/qualification-attempts/{attempt['attempt_id']}"
    own = await workers_client.get(url, headers=alice.headers)
    assert own.status_code == 200 and own.json()["status"] == "started"
    assert "correct" not in own.text and "answer_key" not in own.json()
    theirs = await workers_client.get(url, headers=bob.headers)
    assert theirs.status_code == 404 and theirs.json()["code"] == "attempt_not_found"
    stolen = await submit(workers_client, bob, attempt["attempt_id"], ALL_CORRECT)
    assert stolen.status_code == 404
    assert qtype["id"] not in await my_qualifications(workers_client, bob)
    as_owner = await workers_client.get(url, headers=owner.headers)
    assert as_owner.status_code == 403


async def test_who_may_start_attempts(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    inactive = await create_type(workers_client, owner, status="inactive", test=SAMPLE_TEST)
    active = await create_type(workers_client, owner, test=SAMPLE_TEST)
    assert (await start(workers_client, owner, active["id"])).status_code == 403
    hidden = await start(workers_client, worker, inactive["id"])
    assert hidden.status_code == 404 and hidden.json()["code"] == "qualification_type_not_found"
    assert (await start(workers_client, worker, "NOPE")).status_code == 404
    system = await start(workers_client, worker, APPROVAL_RATE_TYPE_ID)
    assert system.status_code == 403 and system.json()["code"] == "system_qualification_type"


# --------------------------------------------------------------------------- retakes


async def test_without_retry_delay_a_worker_gets_exactly_one_attempt(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    with frozen_clock(apps["workers"]) as clock:
        first = (await start(workers_client, worker, qtype["id"])).json()
        await submit(workers_client, worker, first["attempt_id"], {"q1": "b"})
        for wait in (0, 86_400 * 365):
            clock.advance(wait)
            again = await start(workers_client, worker, qtype["id"])
            assert again.status_code == 409
            problem = again.json()
            assert problem["code"] == "retry_not_allowed" and problem["retry_after"] is None
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qualification_attempts WHERE worker_id = $1", worker.id
        )
        == 1
    )


async def test_holding_the_qualification_counts_as_the_one_attempt(
    workers_client: httpx.AsyncClient, db
) -> None:
    """A direct grant must not be overwritten by a test the worker was never allowed to retake."""
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    granted = await workers_client.put(
        f"/v1/qualification-types/{qtype['id']}/workers/{worker.id}",
        json={"value": 90},
        headers=owner.headers,
    )
    assert granted.status_code == 201
    refused = await start(workers_client, worker, qtype["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "retry_not_allowed"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qualification_attempts WHERE worker_id = $1", worker.id
        )
        == 0
    )


async def test_an_unsubmitted_expired_attempt_still_counts_as_the_one_attempt(
    workers_client: httpx.AsyncClient, apps
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    with frozen_clock(apps["workers"]) as clock:
        await start(workers_client, worker, qtype["id"])
        clock.advance(601)
        again = await start(workers_client, worker, qtype["id"])
    assert again.status_code == 409 and again.json()["code"] == "retry_not_allowed"


async def test_retake_is_allowed_exactly_at_the_delay(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(
        workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY, retry_delay_seconds=3600
    )
    with frozen_clock(apps["workers"]) as clock:
        t0 = clock.now
        first = (await start(workers_client, worker, qtype["id"])).json()
        clock.advance(30)
        low = await submit(workers_client, worker, first["attempt_id"], {"q1": "a"})
        assert low.json()["value"] == 10

        clock.advance(1000)  # 1030 s after the start: 2570 s to go
        early = await start(workers_client, worker, qtype["id"])
        assert early.status_code == 409
        assert early.json()["code"] == "retry_not_allowed"
        assert early.json()["retry_after"] == 2570
        assert early.headers["Retry-After"] == "2570"
        assert _ts(early.json()["retry_allowed_at"]) == t0 + timedelta(seconds=3600)
        assert early.json()["retry_allowed_at"].endswith("Z")

        clock.now = t0 + timedelta(seconds=3600) - timedelta(microseconds=1)
        just_before = await start(workers_client, worker, qtype["id"])
        assert just_before.status_code == 409 and just_before.json()["retry_after"] == 1

        clock.now = t0 + timedelta(seconds=3600)
        exactly = await start(workers_client, worker, qtype["id"])
        assert exactly.status_code == 201, exactly.text
        better = await submit(workers_client, worker, exactly.json()["attempt_id"], ALL_CORRECT)
    assert better.json()["value"] == 100
    # the retake replaced the value; both attempts are on record
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == 100
    statuses = await db.fetch(
        "SELECT status FROM qualification_attempts WHERE worker_id = $1 ORDER BY started_at",
        worker.id,
    )
    assert [r["status"] for r in statuses] == ["granted", "granted"]


async def test_no_second_attempt_while_one_is_live(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(
        workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY, retry_delay_seconds=0
    )
    with frozen_clock(apps["workers"]) as clock:
        first = (await start(workers_client, worker, qtype["id"])).json()
        clock.advance(599)
        busy = await start(workers_client, worker, qtype["id"])
        assert busy.status_code == 409 and busy.json()["code"] == "attempt_in_progress"
        assert busy.json()["attempt_id"] == first["attempt_id"]
        clock.advance(1)  # the deadline: the first attempt is over
        second = await start(workers_client, worker, qtype["id"])
        assert second.status_code == 201
    first_row = await _attempt_row(db, first["attempt_id"])
    assert first_row["status"] == "expired"


# ------------------------------------------------------------------- deadlines, double submit


async def test_submit_at_or_after_the_deadline_is_409_and_changes_nothing(
    workers_client: httpx.AsyncClient, apps, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    with frozen_clock(apps["workers"]) as clock:
        attempt = (await start(workers_client, worker, qtype["id"])).json()
        before = await _attempt_row(db, attempt["attempt_id"])
        for offset in (600, 601, 86_400):
            clock.now = _ts(attempt["deadline"]) + timedelta(seconds=offset - 600)
            late = await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
            assert late.status_code == 409 and late.json()["code"] == "attempt_expired"
        seen = await workers_client.get(
            f"/v1/qualification-attempts/{attempt['attempt_id']}", headers=worker.headers
        )
        assert seen.json()["status"] == "expired"
    assert await _attempt_row(db, attempt["attempt_id"]) == before
    assert qtype["id"] not in await my_qualifications(workers_client, worker)


async def test_a_second_submit_changes_nothing(workers_client: httpx.AsyncClient, db) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    first = await submit(workers_client, worker, attempt["attempt_id"], {"q1": "a"})
    assert first.status_code == 200
    row = await _attempt_row(db, attempt["attempt_id"])
    grant = dict(
        await db.fetchrow("SELECT * FROM worker_qualifications WHERE worker_id = $1", worker.id)
    )
    second = await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    assert second.status_code == 409 and second.json()["code"] == "attempt_already_submitted"
    assert await _attempt_row(db, attempt["attempt_id"]) == row
    assert (
        dict(
            await db.fetchrow("SELECT * FROM worker_qualifications WHERE worker_id = $1", worker.id)
        )
        == grant
    )


async def test_concurrent_submits_of_one_attempt_grant_once(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    answers = [{"q1": "a"}, ALL_CORRECT, {"q4": 42}, {}, {"q3": "paris"}, {"q2": ["two"]}]
    results = await asyncio.gather(
        *(submit(workers_client, worker, attempt["attempt_id"], a) for a in answers)
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * (len(answers) - 1)
    winner = next(r.json() for r in results if r.status_code == 200)
    row = await _attempt_row(db, attempt["attempt_id"])
    assert row["value"] == winner["value"]
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == winner[
        "value"
    ]


# --------------------------------------------------------------------------- concurrent starts


@pytest.mark.parametrize("retry_delay_seconds", [None, 0])
async def test_concurrent_starts_leave_exactly_one_live_attempt(
    workers_client: httpx.AsyncClient, db, retry_delay_seconds: int | None
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(
        workers_client, owner, test=SAMPLE_TEST, retry_delay_seconds=retry_delay_seconds
    )
    results = await asyncio.gather(*(start(workers_client, worker, qtype["id"]) for _ in range(12)))
    created = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(created) == 1
    assert {r.status_code for r in refused} == {409}
    assert {r.json()["code"] for r in refused} <= {"attempt_in_progress", "retry_not_allowed"}
    rows = await db.fetch(
        "SELECT id, status FROM qualification_attempts WHERE worker_id = $1", worker.id
    )
    assert [(r["id"], r["status"]) for r in rows] == [(created[0].json()["attempt_id"], "started")]


async def test_the_database_itself_refuses_a_second_live_attempt(
    workers_client: httpx.AsyncClient, db
) -> None:
    """The race test passes through the advisory lock; this proves the index underneath."""
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, retry_delay_seconds=0)
    insert = """INSERT INTO qualification_attempts (id, qualification_type_id, worker_id, status,
                    started_at) VALUES ($1, $2, $3, $4, now())"""
    await db.execute(insert, new_id(), qtype["id"], worker.id, "started")
    for live in ("started", "pending"):
        with pytest.raises(asyncpg.UniqueViolationError):
            await db.execute(insert, new_id(), qtype["id"], worker.id, live)
    await db.execute(insert, new_id(), qtype["id"], worker.id, "expired")  # history is fine


async def test_different_workers_start_concurrently_without_interfering(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    workers = [await create_worker(workers_client) for _ in range(6)]
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    results = await asyncio.gather(*(start(workers_client, w, qtype["id"]) for w in workers))
    assert [r.status_code for r in results] == [201] * len(workers)


async def test_start_replays_with_the_same_idempotency_key(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST)
    headers = {**worker.headers, "Idempotency-Key": new_id()}
    url = f"/v1/qualification-types/{qtype['id']}/attempts"
    first = await workers_client.post(url, headers=headers)
    again = await workers_client.post(url, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qualification_attempts WHERE worker_id = $1", worker.id
        )
        == 1
    )


# --------------------------------------------------------------------------- owner review


async def test_without_a_key_the_owner_accepts_or_rejects(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    alice = await create_worker(workers_client)
    bob = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST)
    ids = {}
    for worker, answers in ((alice, ALL_CORRECT), (bob, {"q3": "Lyon"})):
        attempt = (await start(workers_client, worker, qtype["id"])).json()
        result = await submit(workers_client, worker, attempt["attempt_id"], answers)
        assert result.json() == {
            "attempt_id": attempt["attempt_id"],
            "status": "pending",
            "score": None,
            "value": None,
            "points": None,
            "max_points": None,
        }
        ids[worker.id] = attempt["attempt_id"]
    assert qtype["id"] not in await my_qualifications(workers_client, alice)

    listing = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/requests",
        params={"status": "pending"},
        headers=owner.headers,
    )
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [i["id"] for i in items] == sorted(ids.values(), reverse=True)
    assert {i["worker_id"]: i["answers"] for i in items}[bob.id] == {"q3": "Lyon"}

    accepted = await workers_client.post(
        f"/v1/qualification-requests/{ids[alice.id]}/accept",
        json={"value": 85},
        headers=owner.headers,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "granted" and accepted.json()["value"] == 85
    rejected = await workers_client.post(
        f"/v1/qualification-requests/{ids[bob.id]}/reject",
        json={"reason": "Lyon is not the capital"},
        headers=owner.headers,
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "Lyon is not the capital"

    assert (await my_qualifications(workers_client, alice))[qtype["id"]]["value"] == 85
    assert qtype["id"] not in await my_qualifications(workers_client, bob)
    bob_view = await workers_client.get(
        f"/v1/qualification-attempts/{ids[bob.id]}", headers=bob.headers
    )
    assert bob_view.json()["status"] == "rejected"
    assert bob_view.json()["reason"] == "Lyon is not the capital"
    pending = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/requests", headers=owner.headers
    )
    assert pending.json()["items"] == []
    done = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/requests",
        params={"status": "granted"},
        headers=owner.headers,
    )
    assert [i["id"] for i in done.json()["items"]] == [ids[alice.id]]

    # a decided request cannot be decided again, and nothing moves
    grant_before = dict(
        await db.fetchrow("SELECT * FROM worker_qualifications WHERE worker_id = $1", alice.id)
    )
    for action, body in (("accept", {"value": 1}), ("reject", {"reason": "changed my mind"})):
        again = await workers_client.post(
            f"/v1/qualification-requests/{ids[alice.id]}/{action}", json=body, headers=owner.headers
        )
        assert again.status_code == 409 and again.json()["code"] == "request_not_pending"
    assert (
        dict(
            await db.fetchrow("SELECT * FROM worker_qualifications WHERE worker_id = $1", alice.id)
        )
        == grant_before
    )


async def test_a_pending_request_blocks_a_new_attempt(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, retry_delay_seconds=0)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    again = await start(workers_client, worker, qtype["id"])
    assert again.status_code == 409 and again.json()["code"] == "request_pending"
    await workers_client.post(
        f"/v1/qualification-requests/{attempt['attempt_id']}/reject",
        json={"reason": "try again"},
        headers=owner.headers,
    )
    assert (await start(workers_client, worker, qtype["id"])).status_code == 201


async def test_review_of_a_foreign_requesters_type_is_404(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    stranger = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    listing = await workers_client.get(
        f"/v1/qualification-types/{qtype['id']}/requests", headers=stranger.headers
    )
    assert listing.status_code == 404 and listing.json()["code"] == "qualification_type_not_found"
    for action, body in (("accept", {"value": 5}), ("reject", {"reason": "no"})):
        resp = await workers_client.post(
            f"/v1/qualification-requests/{attempt['attempt_id']}/{action}",
            json=body,
            headers=stranger.headers,
        )
        assert resp.status_code == 404
        assert resp.json()["code"] == "qualification_request_not_found"
    one = await workers_client.get(
        f"/v1/qualification-requests/{attempt['attempt_id']}", headers=stranger.headers
    )
    assert one.status_code == 404
    as_worker = await workers_client.post(
        f"/v1/qualification-requests/{attempt['attempt_id']}/accept",
        json={"value": 5},
        headers=worker.headers,
    )
    assert as_worker.status_code == 403
    status = await db.fetchval(
        "SELECT status FROM qualification_attempts WHERE id = $1", attempt["attempt_id"]
    )
    assert status == "pending"


async def test_reject_needs_a_reason(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    request = (await start(workers_client, worker, qtype["id"])).json()
    for body in ({}, {"reason": ""}, {"reason": "x", "extra": 1}):
        resp = await workers_client.post(
            f"/v1/qualification-requests/{request['attempt_id']}/reject",
            json=body,
            headers=owner.headers,
        )
        assert resp.status_code == 422


# --------------------------------------------------------------------------- tests-free types


async def test_a_type_without_test_records_a_request_for_review(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    resp = await start(workers_client, worker, qtype["id"])
    assert resp.status_code == 201
    body = resp.json()
    assert body["status"] == "pending" and body["deadline"] is None and body["questions"] == []
    accepted = await workers_client.post(
        f"/v1/qualification-requests/{body['attempt_id']}/accept", headers=owner.headers
    )
    assert accepted.status_code == 200 and accepted.json()["value"] == 1


@pytest.mark.parametrize(("fields", "value"), [({}, 1), ({"auto_grant_value": 75}, 75)])
async def test_auto_grant_grants_on_request_without_a_test(
    workers_client: httpx.AsyncClient, fields: dict, value: int
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, auto_grant=True, **fields)
    assert qtype["has_test"] is False and qtype["auto_grant"] is True
    resp = await start(workers_client, worker, qtype["id"])
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "granted" and resp.json()["value"] == value
    assert resp.json()["questions"] == [] and resp.json()["deadline"] is None
    assert (await my_qualifications(workers_client, worker))[qtype["id"]]["value"] == value
    again = await start(workers_client, worker, qtype["id"])
    assert again.status_code == 409 and again.json()["code"] == "retry_not_allowed"


async def test_concurrent_auto_grant_requests_grant_once(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, auto_grant=True, auto_grant_value=3)
    results = await asyncio.gather(*(start(workers_client, worker, qtype["id"]) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [201] + [409] * 7
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qualification_attempts WHERE worker_id = $1", worker.id
        )
        == 1
    )
