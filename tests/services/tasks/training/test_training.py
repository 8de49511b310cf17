"""Training projects: the project's rule and its bad input, instant feedback on submit, the
pass granting the linked qualification through the outbox (once, under concurrent submits),
failing and retrying on fresh tasks, and answers that never count toward standing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from services.tasks.discovery.repository import SCORECARD_FIGURES_SQL
from shared.eligibility import APPROVAL_RATE_TYPE_ID
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.payments import INTERNAL, assert_ledger_ok
from tests.fixtures.projects import add_tasks
from tests.fixtures.tasks import accept, accepted, submit, wait_delivered
from tests.fixtures.training import (
    TRAINING_DEFAULTS,
    Training,
    training_project,
    training_tasks,
)
from tests.fixtures.workers import create_type, my_qualifications


def other(label: str) -> str:
    return "dog" if label == "cat" else "cat"


async def answer(
    tasks_client: httpx.AsyncClient, worker: Any, training: Training, *, right: bool
) -> dict[str, Any]:
    """Accept the next training task and answer it right or wrong; the submit response."""
    work = await accepted(tasks_client, worker, training.id)
    gold = training.gold[work["task_id"]]
    resp = await submit(
        tasks_client, worker, work["assignment_id"], {"label": gold if right else other(gold)}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def progress(tasks_client: httpx.AsyncClient, worker: Any, project_id: str) -> dict:
    resp = await tasks_client.get(
        f"/v1/work/projects/{project_id}/training", headers=worker.headers
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def listed(tasks_client: httpx.AsyncClient, worker: Any) -> dict[str, dict]:
    """The worker's discovery listing (first page), by project id."""
    resp = await tasks_client.get("/v1/work/projects?limit=200", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    return {p["id"]: p for p in resp.json()["items"]}


def grant_key(training: Training, worker: Any) -> str:
    return f"grant:training:{training.id}:{worker.id}"


# --------------------------------------------------------------------------- the project


async def test_projects_show_their_kind_and_training_rule(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog"],
        min_training_answers=2,
        pass_accuracy=50,
    )
    assert training.project["kind"] == "training"
    assert training.project["reward"] == "0.00"
    assert training.project["training"] == {
        "qualification_type_id": training.type_id,
        "min_training_answers": 2,
        "pass_accuracy": 50,
    }
    resp = await tasks_client.get(
        f"/v1/tasks/{training.task_ids[0]}", headers=training.requester.headers
    )
    assert resp.json()["explanation"] == "Photo 0 shows a cat: look at the ears."
    standard = dict(TRAINING_DEFAULTS, kind="standard", reward="0.10")
    resp = await tasks_client.post(
        "/v1/projects", json=standard, headers=training.requester.headers
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["kind"], resp.json()["training"]) == ("standard", None)
    del standard["kind"]
    resp = await tasks_client.post(
        "/v1/projects", json=standard, headers=training.requester.headers
    )
    assert resp.json()["kind"] == "standard"


async def test_bad_training_projects_are_refused_and_create_nothing(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    stranger = await create_requester(workers_client)
    own = await create_type(workers_client, requester)
    foreign = await create_type(workers_client, stranger)

    def body(**changes: Any) -> dict[str, Any]:
        rule = {"qualification_type_id": own["id"], "min_training_answers": 3, "pass_accuracy": 80}
        return {**TRAINING_DEFAULTS, "training": rule, **changes}

    async def refused(payload: dict[str, Any], loc: list[Any]) -> dict[str, Any]:
        resp = await tasks_client.post("/v1/projects", json=payload, headers=requester.headers)
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        assert problem["code"] == "validation_error"
        assert loc in [e["loc"] for e in problem["errors"]], problem
        return problem

    type_loc = ["body", "training", "qualification_type_id"]
    for type_id in (foreign["id"], "NO_SUCH_TYPE", APPROVAL_RATE_TYPE_ID):
        rule = {"qualification_type_id": type_id, "min_training_answers": 3, "pass_accuracy": 80}
        problem = await refused(body(training=rule), type_loc)
        # Someone else's type and a missing one are refused alike: no existence leak.
        assert [e["msg"] for e in problem["errors"] if e["loc"] == type_loc] == [
            "no qualification type of yours has this id (system types cannot be granted)"
        ]
    await refused(body(training=None), ["body", "training"])
    await refused(dict(body(), kind="standard", reward="0.10"), ["body", "training"])
    await refused(
        dict(TRAINING_DEFAULTS, kind="standard"), ["body", "reward"]
    )  # 0.00: training only
    await refused(
        body(pay_model="hourly", reward=None, hourly_rate="6.00", budget_hours=1),
        ["body", "pay_model"],
    )
    await refused(body(min_hourly_rate="6.00"), ["body", "min_hourly_rate"])
    for rule in ({"min_training_answers": 0}, {"pass_accuracy": 101}, {"nope": 1}):
        resp = await tasks_client.post(
            "/v1/projects",
            json=body(training={"qualification_type_id": own["id"], **rule}),
            headers=requester.headers,
        )
        assert resp.status_code == 422, resp.text
    # Kind and rule are fixed at creation.
    created = await tasks_client.post("/v1/projects", json=body(), headers=requester.headers)
    assert created.status_code == 201, created.text
    resp = await tasks_client.patch(
        f"/v1/projects/{created.json()['id']}", json={"kind": "standard"}, headers=requester.headers
    )
    assert resp.status_code == 422
    for reward in ("0.05", "0.00"):  # a training draft's reward may go back to 0.00
        resp = await tasks_client.patch(
            f"/v1/projects/{created.json()['id']}",
            json={"reward": reward},
            headers=requester.headers,
        )
        assert (resp.status_code, resp.json()["reward"]) == (200, reward), resp.text
    count = await db.fetchval("SELECT count(*) FROM projects WHERE requester_id = $1", requester.id)
    assert count == 1


async def test_publishing_needs_gold_answers_and_explanations_on_every_task(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester = await create_requester(workers_client)
    qualification = await create_type(workers_client, requester)
    rule = {"qualification_type_id": qualification["id"], "min_training_answers": 2}
    resp = await tasks_client.post(
        "/v1/projects", json={**TRAINING_DEFAULTS, "training": rule}, headers=requester.headers
    )
    project_id = resp.json()["id"]
    good = training_tasks(["cat"])
    no_gold = {"input": {"text": "no gold"}, "explanation": "why"}
    no_explanation = {"input": {"text": "no why"}, "gold_answer": {"label": "dog"}}
    resp = await tasks_client.post(
        f"/v1/projects/{project_id}/tasks",
        json={"tasks": [*good, no_gold, no_explanation]},
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text  # a draft is checked at publish
    gold_less, why_less = resp.json()["task_ids"][1:]
    resp = await tasks_client.post(f"/v1/projects/{project_id}/publish", headers=requester.headers)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["code"] == "training_task_without_gold"
    assert sorted(e["loc"] for e in problem["errors"]) == sorted(
        [["tasks", gold_less, "gold_answer"], ["tasks", why_less, "explanation"]]
    )
    assert await db.fetchval("SELECT status FROM projects WHERE id = $1", project_id) == "draft"

    # Without them, one task is too few to decide an attempt of 2 answers.
    await db.execute("DELETE FROM tasks WHERE id = ANY($1)", [gold_less, why_less])
    resp = await tasks_client.post(f"/v1/projects/{project_id}/publish", headers=requester.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "training_too_few_tasks"
    # Once published, a task without a gold answer or an explanation is refused at upload.
    await add_tasks(tasks_client, requester, project_id, training_tasks(["dog"], start=9))
    resp = await tasks_client.post(f"/v1/projects/{project_id}/publish", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    for bad in (no_gold, no_explanation, {**no_explanation, "explanation": "  "}):
        resp = await tasks_client.post(
            f"/v1/projects/{project_id}/tasks",
            json={"tasks": [*training_tasks(["dog"], start=5), bad]},
            headers=requester.headers,
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["code"] == "training_task_without_gold"
        assert resp.json()["errors"][0]["loc"] == ["tasks", 1]
    csv_body = 'input,gold_answer,explanation\n"{""text"": ""a""}","{""label"": ""cat""}",\n'
    resp = await tasks_client.post(
        f"/v1/projects/{project_id}/tasks",
        content=csv_body,
        headers={**requester.headers, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "training_task_without_gold"
    csv_body = csv_body.replace(",\n", ",Cats have whiskers\n")
    resp = await tasks_client.post(
        f"/v1/projects/{project_id}/tasks",
        content=csv_body,
        headers={**requester.headers, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 201, resp.text
    count = await db.fetchval("SELECT count(*) FROM tasks WHERE project_id = $1", project_id)
    assert count == 3


# --------------------------------------------------------------------------- the worker's side


async def test_feedback_on_submit_and_a_pass_grants_the_qualification_once(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    apps: dict,
    db: asyncpg.Pool,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog", "cat", "dog"],
        min_training_answers=3,
        pass_accuracy=60,
    )
    worker = await create_worker(workers_client)
    before = await progress(tasks_client, worker, training.id)
    assert (before["status"], before["attempt"], before["fresh_tasks"]) == ("not_started", 0, 4)
    assert (await listed(tasks_client, worker)).get(training.id, {}).get("kind") == "training"

    work = await accepted(tasks_client, worker, training.id)
    # The expected answer is revealed only by the worker's own submit of that task.
    assert "gold_answer" not in work and "explanation" not in work
    gold = training.gold[work["task_id"]]
    resp = await submit(tasks_client, worker, work["assignment_id"], {"label": other(gold)})
    assert resp.status_code == 200, resp.text
    first = resp.json()
    assert first["status"] == "approved"
    index = training.task_ids.index(work["task_id"])
    assert first["training"]["correct"] is False
    assert first["training"]["expected_answer"] == {"label": gold}
    assert first["training"]["explanation"] == f"Photo {index} shows a {gold}: look at the ears."
    assert first["training"]["progress"]["answers"] == 1
    assert first["training"]["progress"]["correct"] == 0
    excluded = await db.fetchval(
        "SELECT standing_excluded FROM assignments WHERE id = $1", work["assignment_id"]
    )
    assert excluded is True
    mine = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert "gold" not in mine.text and "explanation" not in mine.text

    second = await answer(tasks_client, worker, training, right=True)
    assert second["training"]["correct"] is True
    assert second["training"]["progress"]["status"] == "in_progress"
    third = await answer(tasks_client, worker, training, right=True)
    after = third["training"]["progress"]
    assert (after["status"], after["answers"], after["correct"], after["accuracy"]) == (
        "passed",
        3,
        2,
        66,
    )
    assert after["granted_value"] == 66 and after["decided_at"] is not None

    await wait_delivered(db, [grant_key(training, worker)], apps)
    held = await my_qualifications(workers_client, worker)
    assert held[training.type_id]["value"] == 66
    # Passed: no more training here, and nothing paid (the project pays 0.00).
    resp = await accept(tasks_client, worker, training.id)
    assert resp.status_code == 409 and resp.json()["code"] == "training_passed"
    assert training.id not in await listed(tasks_client, worker)  # tasks are left, not for them
    messages = await db.fetch(
        "SELECT kind FROM outbox WHERE payload ->> 'project_id' = $1 ORDER BY id", training.id
    )
    assert [m["kind"] for m in messages] == ["grant"]
    # Training answers never count toward standing (approval rate, approved count).
    profile = await workers_client.get(
        f"/v1/workers/{worker.id}", headers=training.requester.headers
    )
    assert profile.status_code == 200, profile.text
    assert profile.json()["approved_count"] == 0
    assert profile.json()["submitted_count"] == 0
    # Nor toward the requester's scorecard: the platform approved them, not the requester.
    card = await db.fetchrow(SCORECARD_FIGURES_SQL, [training.requester.id], 300, 3)
    assert (card["approved"], card["rejected"], card["median_review_seconds"]) == (0, 0, None)


async def test_a_failed_attempt_retries_after_the_delay_on_fresh_tasks_only(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    apps: dict,
    db: asyncpg.Pool,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog", "dog", "cat", "cat"],
        min_training_answers=2,
        pass_accuracy=100,
        retry_delay_seconds=0,
    )
    worker = await create_worker(workers_client)
    seen = set()
    for _ in range(2):
        result = await answer(tasks_client, worker, training, right=False)
        seen.add(result["task_id"])
    failed = await progress(tasks_client, worker, training.id)
    assert (failed["status"], failed["answers"], failed["accuracy"]) == ("failed", 2, 0)
    assert failed["retry_at"] is not None and failed["fresh_tasks"] == 3

    # The type's delay (0 s) has passed: the next accept starts attempt 2 on a fresh task.
    for _ in range(2):
        result = await answer(tasks_client, worker, training, right=True)
        assert result["task_id"] not in seen
        seen.add(result["task_id"])
    passed = result["training"]["progress"]
    assert (passed["status"], passed["attempt"], passed["answers"], passed["correct"]) == (
        "passed",
        2,
        2,
        2,
    )
    await wait_delivered(db, [grant_key(training, worker)], apps)
    assert (await my_qualifications(workers_client, worker))[training.type_id]["value"] == 100


async def test_retries_wait_for_the_delay_and_a_type_without_one_allows_one_attempt(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    for delay in (3600, None):
        training = await training_project(
            tasks_client,
            workers_client,
            payments_client,
            labels=["cat", "dog", "cat"],
            min_training_answers=1,
            pass_accuracy=100,
            retry_delay_seconds=delay,
        )
        worker = await create_worker(workers_client)
        await answer(tasks_client, worker, training, right=False)
        resp = await accept(tasks_client, worker, training.id)
        assert resp.status_code == 409, resp.text
        problem = resp.json()
        assert problem["code"] == "retry_not_allowed"
        assert training.id not in await listed(tasks_client, worker)
        state = await progress(tasks_client, worker, training.id)
        assert state["status"] == "failed"
        if delay is None:
            assert problem["retry_after"] is None and problem["retry_allowed_at"] is None
            assert state["retry_at"] is None
        else:
            assert 3590 <= problem["retry_after"] <= 3600
            assert resp.headers["Retry-After"] == str(problem["retry_after"])
            assert state["retry_at"] is not None


async def test_a_paid_training_answer_is_paid_like_an_approval(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    apps: dict,
    db: asyncpg.Pool,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog"],
        min_training_answers=2,
        pass_accuracy=0,
        reward="0.05",
        assignments_per_task=1,
    )
    worker = await create_worker(workers_client)
    paid = [await answer(tasks_client, worker, training, right=False) for _ in range(2)]
    keys = [f"pay:{a['id']}" for a in paid] + [grant_key(training, worker)]
    await wait_delivered(db, keys, apps)
    resp = await payments_client.get("/v1/balance", headers=worker.headers)
    assert resp.json()["available"] == "0.10"
    assert (await my_qualifications(workers_client, worker))[training.type_id]["value"] == 0
    await assert_ledger_ok(payments_client)


async def test_concurrent_submits_grant_the_qualification_exactly_once(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    apps: dict,
    db: asyncpg.Pool,
) -> None:
    labels = ["cat", "dog"] * 4
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=labels,
        min_training_answers=6,
        pass_accuracy=50,
    )
    worker = await create_worker(workers_client)
    held = [await accepted(tasks_client, worker, training.id) for _ in labels]
    responses = await asyncio.gather(
        *(
            submit(
                tasks_client,
                worker,
                work["assignment_id"],
                {"label": training.gold[work["task_id"]]},
            )
            for work in held
        )
    )
    assert [r.status_code for r in responses] == [200] * len(labels), [r.text for r in responses]
    # Six answers decide the attempt (whichever six committed first); the other two are graded
    # for the worker but not counted.
    outcomes = [r.json()["training"]["progress"] for r in responses]
    assert sum(o["status"] == "passed" for o in outcomes) >= 1
    row = await db.fetchrow(
        "SELECT status, answered, correct, granted_value FROM training_progress "
        "WHERE project_id = $1 AND worker_id = $2",
        training.id,
        worker.id,
    )
    assert dict(row) == {"status": "passed", "answered": 6, "correct": 6, "granted_value": 100}
    grants = await db.fetch(
        "SELECT key, payload FROM outbox WHERE kind = 'grant' AND payload ->> 'worker_id' = $1",
        worker.id,
    )
    assert [g["key"] for g in grants] == [grant_key(training, worker)]
    await wait_delivered(db, [grant_key(training, worker)], apps)
    count = await db.fetchval(
        "SELECT count(*) FROM worker_qualifications WHERE worker_id = $1 "
        "AND qualification_type_id = $2 AND status = 'granted' AND value = 100",
        worker.id,
        training.type_id,
    )
    assert count == 1


async def test_progress_is_the_callers_own_and_only_for_training_projects(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat"],
        min_training_answers=1,
        pass_accuracy=100,
    )
    worker, other_worker = await create_worker(workers_client), await create_worker(workers_client)
    await answer(tasks_client, worker, training, right=True)
    theirs = await progress(tasks_client, other_worker, training.id)
    assert (theirs["status"], theirs["answers"], theirs["fresh_tasks"]) == ("not_started", 0, 1)
    resp = await tasks_client.get(
        f"/v1/work/projects/{training.id}/training", headers=training.requester.headers
    )
    assert resp.status_code == 403
    for missing in ("NO_SUCH_PROJECT",):
        resp = await tasks_client.get(
            f"/v1/work/projects/{missing}/training", headers=worker.headers
        )
        assert resp.status_code == 404
    standard = dict(TRAINING_DEFAULTS, kind="standard", reward="0.10")
    resp = await tasks_client.post(
        "/v1/projects", json=standard, headers=training.requester.headers
    )
    resp = await tasks_client.get(
        f"/v1/work/projects/{resp.json()['id']}/training", headers=worker.headers
    )
    assert resp.status_code == 404


async def test_a_pass_survives_a_workers_outage_and_is_granted_once_it_is_back(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    apps: dict,
    mesh: Any,
    db: asyncpg.Pool,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["dog"],
        min_training_answers=1,
        pass_accuracy=100,
    )
    worker = await create_worker(workers_client)
    key = grant_key(training, worker)
    mesh.stop("workers")
    try:
        result = await answer(tasks_client, worker, training, right=True)
        assert result["training"]["progress"]["status"] == "passed"
        await apps["tasks"].state.outbox_deliverer.deliver_due()
        row = await db.fetchrow(
            "SELECT delivered_at, parked_at, attempts, last_error FROM outbox WHERE key = $1", key
        )
        assert row["delivered_at"] is None and row["parked_at"] is None, dict(row)
        assert row["attempts"] >= 1 and row["last_error"]
    finally:
        mesh.start("workers")
    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE key = $1", key)
    await wait_delivered(db, [key], apps)
    assert (await my_qualifications(workers_client, worker))[training.type_id]["value"] == 100


async def test_the_internal_grant_is_idempotent_and_keeps_the_owners_rules(
    workers_client: httpx.AsyncClient,
) -> None:
    requester, stranger = (
        await create_requester(workers_client),
        await create_requester(workers_client),
    )
    worker = await create_worker(workers_client)
    own = await create_type(workers_client, requester)
    body = {
        "key": "grant:training:P1:" + worker.id,
        "qualification_type_id": own["id"],
        "worker_id": worker.id,
        "requester_id": requester.id,
        "project_id": "P1",
        "value": 75,
    }
    for _ in range(2):
        resp = await workers_client.post(
            "/internal/qualification-grants", json=body, headers=INTERNAL
        )
        assert resp.status_code == 200, resp.text
        assert (resp.json()["value"], resp.json()["status"]) == (75, "granted")
    assert (await my_qualifications(workers_client, worker))[own["id"]]["value"] == 75
    refusals = [
        ({"requester_id": stranger.id}, 404, "qualification_type_not_found"),
        ({"qualification_type_id": APPROVAL_RATE_TYPE_ID}, 403, "system_qualification_type"),
        ({"worker_id": "NO_SUCH_WORKER"}, 404, "worker_not_found"),
        ({"value": 101}, 422, "validation_error"),
    ]
    for change, status, code in refusals:
        resp = await workers_client.post(
            "/internal/qualification-grants", json={**body, **change}, headers=INTERNAL
        )
        assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    resp = await workers_client.post("/internal/qualification-grants", json=body)
    assert resp.status_code == 401


async def test_an_answer_taken_before_the_attempt_is_graded_but_not_counted(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog", "cat"],
        min_training_answers=1,
        pass_accuracy=100,
        retry_delay_seconds=0,
    )
    worker = await create_worker(workers_client)
    first, second = [await accepted(tasks_client, worker, training.id) for _ in range(2)]
    wrong = {"label": other(training.gold[first["task_id"]])}
    failed = (await submit(tasks_client, worker, first["assignment_id"], wrong)).json()
    assert failed["training"]["progress"]["status"] == "failed"
    # Attempt 2 starts with the next accept; the answer taken in attempt 1 does not count in it.
    third = await accepted(tasks_client, worker, training.id)
    right = {"label": training.gold[second["task_id"]]}
    late = (await submit(tasks_client, worker, second["assignment_id"], right)).json()
    assert late["training"]["correct"] is True
    state = late["training"]["progress"]
    assert (state["status"], state["attempt"], state["answers"]) == ("in_progress", 2, 0)
    right = {"label": training.gold[third["task_id"]]}
    done = (await submit(tasks_client, worker, third["assignment_id"], right)).json()
    state = done["training"]["progress"]
    assert (state["status"], state["attempt"], state["answers"], state["fresh_tasks"]) == (
        "passed",
        2,
        1,
        0,
    )


async def test_a_retried_submit_replays_the_feedback_and_counts_once(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog"],
        min_training_answers=2,
        pass_accuracy=50,
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, training.id)
    body = {"answer": {"label": training.gold[work["task_id"]]}}
    headers = {**worker.headers, "Idempotency-Key": "train-1"}
    url = f"/v1/assignments/{work['assignment_id']}/submit"
    first = await tasks_client.post(url, json=body, headers=headers)
    again = await tasks_client.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    state = await progress(tasks_client, worker, training.id)
    assert (state["answers"], state["correct"]) == (1, 1)


async def test_a_free_training_project_moves_no_money_when_closed_or_given_back(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog"],
        min_training_answers=2,
        pass_accuracy=50,
    )
    worker = await create_worker(workers_client)
    await answer(tasks_client, worker, training, right=True)
    held = await accepted(tasks_client, worker, training.id)
    resp = await tasks_client.post(
        f"/v1/projects/{training.id}/close", headers=training.requester.headers
    )
    assert resp.status_code == 200, resp.text
    resp = await tasks_client.post(
        f"/v1/assignments/{held['assignment_id']}/return", headers=worker.headers
    )
    assert resp.status_code == 200, resp.text
    messages = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE payload ->> 'project_id' = $1", training.id
    )
    assert messages == 0  # no zero payout, release or hold: nothing was ever reserved
    await assert_ledger_ok(payments_client)


async def test_the_owner_sees_each_workers_attempt(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog", "cat"],
        min_training_answers=1,
        pass_accuracy=100,
        retry_delay_seconds=None,
    )
    passer, failer = await create_worker(workers_client), await create_worker(workers_client)
    await answer(tasks_client, passer, training, right=True)
    await answer(tasks_client, failer, training, right=False)
    url = f"/v1/projects/{training.id}/training/workers"
    owner = training.requester.headers
    resp = await tasks_client.get(url, headers=owner)
    assert resp.status_code == 200, resp.text
    rows = {r["worker_id"]: r for r in resp.json()["items"]}
    assert rows[passer.id]["status"] == "passed" and rows[passer.id]["granted_value"] == 100
    assert rows[failer.id]["status"] == "failed" and rows[failer.id]["accuracy"] == 0
    assert rows[failer.id]["retry_at"] is None
    # Newest worker accounts first, a page at a time; a filter by status.
    first = await tasks_client.get(url, params={"limit": 1}, headers=owner)
    assert [r["worker_id"] for r in first.json()["items"]] == [failer.id]
    second = await tasks_client.get(
        url, params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=owner
    )
    assert [r["worker_id"] for r in second.json()["items"]] == [passer.id]
    passed = await tasks_client.get(url, params={"status": "passed"}, headers=owner)
    assert [r["worker_id"] for r in passed.json()["items"]] == [passer.id]
    stranger = await create_requester(workers_client)
    assert (await tasks_client.get(url, headers=stranger.headers)).status_code == 404
    assert (await tasks_client.get(url, headers=passer.headers)).status_code == 403
    resp = await tasks_client.get(url, params={"status": "nope"}, headers=owner)
    assert resp.status_code == 422


async def test_concurrent_accepts_after_a_failure_start_one_new_attempt(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    training = await training_project(
        tasks_client,
        workers_client,
        payments_client,
        labels=["cat", "dog", "cat", "dog", "cat"],
        min_training_answers=1,
        pass_accuracy=100,
        retry_delay_seconds=0,
    )
    worker = await create_worker(workers_client)
    await answer(tasks_client, worker, training, right=False)
    responses = await asyncio.gather(*(accept(tasks_client, worker, training.id) for _ in range(4)))
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["task_id"] for r in responses}) == 4
    state = await progress(tasks_client, worker, training.id)
    assert (state["status"], state["attempt"], state["answers"]) == ("in_progress", 2, 0)
