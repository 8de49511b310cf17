"""`GET /v1/projects/{id}/results?aggregation=`: crowd-kit's methods through the API.

The reference is crowd-kit itself, run here on the answers the default export shows (the voting
ones, in export order) as plain strings: same answers, same labels, same confidences to 1e-9,
same skills. Plus the run lifecycle (202 + status URL, the cache and its watermark), the 422s
that name what fits, and the workers page's skill.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from crowdkit.aggregation import GLAD, MACE, ROVER, DawidSkene, MajorityVote, Wawa

from services.tasks.results import service
from services.tasks.results.jobs import jobs_of
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.projects import funded_published_project, insert_assignment

LABELS = ["cat", "dog", "bird"]
TOLERANCE = 1e-9


async def _project_with_answers(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
    *,
    n_tasks: int = 14,
    n_workers: int = 5,
    seed: int = 7,
) -> tuple[Actor, dict[str, Any], list[Actor]]:
    """A classification project whose workers are of known quality (two reliable, one
    mediocre, two spammers), a rejected answer here and there, two gold tasks."""
    rng = random.Random(seed)
    truth = [rng.choice(LABELS) for _ in range(n_tasks)]
    tasks = [
        {
            "input": {"image_url": f"{i}.jpg"},
            **({"gold_answer": {"label": truth[i]}} if i < 2 else {}),
        }
        for i in range(n_tasks)
    ]
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=tasks,
        assignments_per_task=n_workers,
        labels=LABELS,
    )
    rows = await db.fetch("SELECT id FROM tasks WHERE project_id = $1 ORDER BY id", project["id"])
    ids = [r["id"] for r in rows]
    workers = [await create_worker(workers_client) for _ in range(n_workers)]
    reliability = [0.95, 0.9, 0.65, 0.0, 0.0]
    for t, task_id in enumerate(ids):
        for w, worker in enumerate(workers):
            label = truth[t] if rng.random() < reliability[w] else rng.choice(LABELS)
            status = rng.choices(["submitted", "approved", "rejected"], [5, 4, 1])[0]
            await insert_assignment(
                db, task_id=task_id, worker_id=worker.id, status=status, answer={"label": label}
            )
    return requester, project, workers


async def _results(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str, **params: str
) -> httpx.Response:
    return await tasks_client.get(
        f"/v1/projects/{project_id}/results", params=params, headers=requester.headers
    )


async def _aggregated(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str, method: str
) -> httpx.Response:
    """The client's flow: ask; on 202 poll the status URL until the run is done; ask again."""
    resp = await _results(tasks_client, requester, project_id, aggregation=method)
    for _ in range(1200):
        if resp.status_code != 202:
            return resp
        status = await tasks_client.get(resp.headers["location"], headers=requester.headers)
        assert status.status_code == 200
        assert status.json()["status"] != "failed", status.json()
        if status.json()["status"] == "done":
            resp = await _results(tasks_client, requester, project_id, aggregation=method)
        else:
            await asyncio.sleep(0.1)
    raise AssertionError("the aggregation run did not finish")


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """crowd-kit's input from the default export: voting answers, in export order."""
    rows = [
        (record["task_id"], answer["worker_id"], answer["answer"]["label"])
        for record in records
        for answer in record["answers"]
        if answer["status"] in ("submitted", "approved")
    ]
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def _reference(method: str, data: pd.DataFrame, gold: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """crowd-kit's own probabilities and skills for `method` on `data`."""
    if method == "majority":
        model = MajorityVote().fit(data)
        return model.probas_, model.skills_.to_dict()
    if method == "wawa":
        model = Wawa().fit(data)
        return model.predict_proba(data), model.skills_.to_dict()
    if method == "dawid_skene":
        true_labels = pd.Series(gold, name="label").rename_axis("task")
        model = DawidSkene(n_iter=100).fit(data, true_labels=true_labels)
        errors, priors = model.errors_, model.priors_
        skills: dict[str, float] = {}
        for (worker, given), row in errors.iterrows():
            if given in errors.columns:
                skills[worker] = skills.get(worker, 0.0) + row[given] * priors[given]
        return model.probas_, skills
    if method == "glad":
        model = GLAD().fit(data)
        return model.probas_, model.alphas_.to_dict()
    model = MACE(random_state=0).fit(data)
    workers = pd.unique(data["worker"])
    return model.probas_, dict(zip(workers, model.spamming_[:, 1], strict=True))


@pytest.fixture(scope="module")
async def label_project(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> tuple[Actor, dict[str, Any], list[Actor]]:
    """One project for every method's comparison (the answers are only read)."""
    return await _project_with_answers(tasks_client, workers_client, payments_client, db)


@pytest.mark.parametrize("method", ["majority", "wawa", "dawid_skene", "glad", "mace"])
async def test_each_label_method_matches_crowd_kit_on_the_same_answers(
    tasks_client: httpx.AsyncClient,
    db: Any,
    label_project: tuple[Actor, dict[str, Any], list[Actor]],
    method: str,
) -> None:
    requester, project, _ = label_project
    default = await _results(tasks_client, requester, project["id"])
    assert default.status_code == 200
    records = default.json()
    gold_rows = await db.fetch(
        "SELECT id, gold_answer FROM tasks WHERE project_id = $1 AND gold_answer IS NOT NULL",
        project["id"],
    )
    gold = {r["id"]: orjson.loads(r["gold_answer"])["label"] for r in gold_rows}
    probas, skills = _reference(method, _frame(records), gold)

    resp = await _aggregated(tasks_client, requester, project["id"], method)
    assert resp.status_code == 200, resp.text
    ours = resp.json()
    assert [r["task_id"] for r in ours] == [r["task_id"] for r in records]
    compared = 0
    for record in ours:
        aggregate = record["aggregate"]
        assert aggregate["method"] == method
        label = aggregate["answer"]["label"]
        row = probas.loc[record["task_id"]]
        # The answer is crowd-kit's most probable label (ties: the project's label order) and
        # the confidence is crowd-kit's probability of it.
        assert abs(aggregate["confidence"] - row[label]) <= TOLERANCE
        assert abs(row[label] - row.max()) <= TOLERANCE
        best = [x for x in LABELS if x in row.index and abs(row[x] - row.max()) <= TOLERANCE]
        assert label == best[0]
        voting = [a for a in record["answers"] if a["status"] != "rejected"]
        agree = sum(a["answer"]["label"] == label for a in voting) / len(voting)
        assert aggregate["agreement"] == round(agree, 2)
        for answer in record["answers"]:
            if answer["worker_id"] in skills and answer["status"] != "rejected":
                expected = skills[answer["worker_id"]]
                assert abs(answer["worker_skill"] - expected) <= TOLERANCE
        compared += 1
    assert compared == len(records)


async def test_rover_matches_crowd_kit_and_boxes_come_from_segmentation_em(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    requester = await create_requester(workers_client)
    texts = [
        ["the cat sat on the mat", "the cat sat on a mat", "the bat sat on the mat"],
        ["hello world", "hello  world", "jello world"],
    ]
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[{"input": {"audio_url": f"{i}.mp3"}} for i in range(2)],
        task_type="transcription",
        labels=None,
        assignments_per_task=3,
    )
    ids = [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM tasks WHERE project_id = $1 ORDER BY id", project["id"]
        )
    ]
    workers = [await create_worker(workers_client) for _ in range(3)]
    for task_id, variants in zip(ids, texts, strict=True):
        for worker, text in zip(workers, variants, strict=True):
            await insert_assignment(
                db, task_id=task_id, worker_id=worker.id, status="submitted", answer={"text": text}
            )
    records = (await _results(tasks_client, requester, project["id"])).json()
    data = pd.DataFrame(
        [
            (r["task_id"], a["worker_id"], a["answer"]["text"])
            for r in records
            for a in r["answers"]
        ],
        columns=["task", "worker", "text"],
    )
    reference = ROVER(tokenizer=str.split, detokenizer=" ".join).fit_predict(data)
    resp = await _aggregated(tasks_client, requester, project["id"], "rover")
    assert resp.status_code == 200, resp.text
    for record in resp.json():
        assert record["aggregate"]["answer"] == {"text": reference[record["task_id"]]}
        assert record["aggregate"]["confidence"] is None
    assert [r["aggregate"]["answer"]["text"] for r in resp.json()] == [
        "the cat sat on the mat",
        "hello world",
    ]

    # Bounding boxes: three workers agree on a box, a fourth draws one elsewhere.
    boxes_project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[{"input": {"image_url": "b.jpg"}}],
        task_type="bounding_box",
        labels=["car", "person"],
        assignments_per_task=4,
    )
    (task_id,) = [
        r["id"]
        for r in await db.fetch("SELECT id FROM tasks WHERE project_id = $1", boxes_project["id"])
    ]
    drawn = [
        {"label": "car", "x": 0.25, "y": 0.25, "width": 0.5, "height": 0.25},
        {"label": "car", "x": 0.25, "y": 0.25, "width": 0.5, "height": 0.25},
        {"label": "car", "x": 0.26, "y": 0.25, "width": 0.49, "height": 0.25},
        {"label": "car", "x": 0.0, "y": 0.8, "width": 0.1, "height": 0.1},
    ]
    box_workers = [await create_worker(workers_client) for _ in range(4)]
    for worker, box in zip(box_workers, drawn, strict=True):
        await insert_assignment(
            db, task_id=task_id, worker_id=worker.id, status="submitted", answer={"boxes": [box]}
        )
    resp = await _aggregated(tasks_client, requester, boxes_project["id"], "segmentation_em")
    assert resp.status_code == 200, resp.text
    (record,) = resp.json()
    assert record["aggregate"]["answer"] == {
        "boxes": [{"label": "car", "x": 0.25, "y": 0.25, "width": 0.5, "height": 0.25}]
    }
    assert record["aggregate"]["agreement"] == 0.75
    skills = {a["worker_id"]: a["worker_skill"] for a in record["answers"]}
    assert skills[box_workers[3].id] == 0.0 and skills[box_workers[0].id] == 1.0


async def test_bad_methods_get_422_naming_what_fits(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client, payments_client, requester, tasks=[{"input": {"image_url": "x.jpg"}}]
    )
    resp = await _results(tasks_client, requester, project["id"], aggregation="rover")
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "aggregation_not_supported"
    assert body["errors"][0]["loc"] == ["query", "aggregation"]
    assert body["errors"][0]["msg"] == (
        "'rover' does not fit classification projects; "
        "allowed: majority, wawa, dawid_skene, glad, mace"
    )
    # Not a method at all: the parameter's own validation lists every method.
    resp = await _results(tasks_client, requester, project["id"], aggregation="bogus")
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == ["query", "aggregation"]
    for method in ("majority", "wawa", "dawid_skene", "glad", "mace", "rover"):
        assert method in body["errors"][0]["msg"]
    free_form = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[{"input": {"q": "?"}}],
        task_type="free_form",
        labels=None,
        answer_schema={"type": "object"},
    )
    resp = await _results(tasks_client, requester, free_form["id"], aggregation="majority")
    assert resp.status_code == 422
    assert "allowed: none" in resp.json()["errors"][0]["msg"]
    stranger = await create_requester(workers_client)
    resp = await _results(tasks_client, stranger, project["id"], aggregation="majority")
    assert resp.status_code == 404


async def test_a_run_is_202_until_done_then_cached_until_new_answers(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    app = apps["tasks"]
    settings = app.state.settings
    # No inline wait: every run answers 202 first. (State keeps attributes in a dict, which
    # monkeypatch would delete on undo, so set and restore by hand.)
    app.state.settings = settings.model_copy(update={"aggregation_inline_wait_seconds": 0})
    try:
        await _watermark_and_status(app, tasks_client, workers_client, payments_client, db)
    finally:
        app.state.settings = settings


async def _watermark_and_status(
    app: Any,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    requester, project, _ = await _project_with_answers(
        tasks_client, workers_client, payments_client, db, n_tasks=4
    )
    resp = await _results(tasks_client, requester, project["id"], aggregation="dawid_skene")
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert resp.headers["location"] == run["status_url"]
    assert run["status"] == "running" and run["method"] == "dawid_skene"
    for _ in range(600):
        status = await tasks_client.get(run["status_url"], headers=requester.headers)
        assert status.status_code == 200
        if status.json()["status"] != "running":
            break
        await asyncio.sleep(0.1)
    done = status.json()
    assert done["status"] == "done", done
    assert done["progress"] == 1 and done["task_count"] == 4 and done["worker_count"] == 5

    again = await _results(tasks_client, requester, project["id"], aggregation="dawid_skene")
    assert again.status_code == 200
    assert again.headers["content-disposition"].endswith('-dawid_skene.json"')
    count = await db.fetchval(
        "SELECT count(*) FROM aggregation_runs WHERE project_id = $1", project["id"]
    )
    assert count == 1

    stranger = await create_requester(workers_client)
    hidden = await tasks_client.get(run["status_url"], headers=stranger.headers)
    assert hidden.status_code == 404

    # A new answer moves the watermark: the next request starts a new run.
    extra_task = await db.fetchval(
        "SELECT id FROM tasks WHERE project_id = $1 ORDER BY id LIMIT 1", project["id"]
    )
    newcomer = await create_worker(workers_client)
    await db.execute(
        "UPDATE tasks SET max_assignments = max_assignments + 1, open_slots = open_slots + 1 "
        "WHERE id = $1",
        extra_task,
    )
    await insert_assignment(
        db, task_id=extra_task, worker_id=newcomer.id, status="submitted", answer={"label": "cat"}
    )
    fresh = await _results(tasks_client, requester, project["id"], aggregation="dawid_skene")
    assert fresh.status_code == 202
    assert fresh.json()["id"] != run["id"]


async def test_workers_page_carries_the_skill_estimate(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    requester, project, workers = await _project_with_answers(
        tasks_client, workers_client, payments_client, db, n_tasks=4
    )
    # gold_stats rows as submit writes them (insert_assignment goes around submit).
    for worker in workers:
        await db.execute(
            "INSERT INTO gold_stats (project_id, worker_id, submitted) VALUES ($1, $2, 4)",
            project["id"],
            worker.id,
        )
    before = await tasks_client.get(
        f"/v1/projects/{project['id']}/workers", headers=requester.headers
    )
    assert {item["skill"] for item in before.json()["items"]} == {None}
    resp = await _aggregated(tasks_client, requester, project["id"], "wawa")
    assert resp.status_code == 200
    expected = {
        a["worker_id"]: a["worker_skill"]
        for record in resp.json()
        for a in record["answers"]
        if a["worker_skill"] is not None
    }
    page = await tasks_client.get(
        f"/v1/projects/{project['id']}/workers",
        params={"aggregation": "wawa"},
        headers=requester.headers,
    )
    assert page.status_code == 200
    items = page.json()["items"]
    assert {i["worker_id"]: i["skill"] for i in items} == expected
    assert {i["skill_method"] for i in items} == {"wawa"}
    # Default: the newest finished run of any method.
    default = await tasks_client.get(
        f"/v1/projects/{project['id']}/workers", headers=requester.headers
    )
    assert {i["skill_method"] for i in default.json()["items"]} == {"wawa"}

    # The same run as JSON Lines and CSV, and through the function other exports build on.
    records = {r["task_id"]: r for r in resp.json()}
    wawa = {"aggregation": "wawa"}
    lines = await _results(tasks_client, requester, project["id"], **wawa, format="jsonl")
    assert [orjson.loads(line) for line in lines.text.splitlines()] == list(records.values())
    table = await _results(tasks_client, requester, project["id"], **wawa, format="csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert list(rows[0]) == [
        "task_id",
        "external_id",
        "input",
        "aggregate_answer",
        "agreement",
        "confidence",
        "answers",
    ]
    for row in rows:
        aggregate = records[row["task_id"]]["aggregate"]
        assert orjson.loads(row["aggregate_answer"]) == aggregate["answer"]
        assert float(row["confidence"]) == aggregate["confidence"]
        assert float(row["agreement"]) == aggregate["agreement"]
    database = apps["tasks"].state.database
    async with database.read() as read_db:
        _, run = await service.aggregation_run(
            read_db,
            database=database,
            jobs=jobs_of(apps["tasks"]),
            requester_id=requester.id,
            project_id=project["id"],
            method="wawa",
            wait_seconds=0,
        )
        assert run.status == "done"  # the cached run: nothing new was answered
        aggregates = await service.run_aggregates(read_db, run=run)
    assert set(aggregates) == set(records)
    for task_id, aggregate in aggregates.items():
        assert aggregate.answer == records[task_id]["aggregate"]["answer"]
        assert aggregate.confidence == records[task_id]["aggregate"]["confidence"]
        assert aggregate.method == "wawa"


async def test_a_run_whose_process_died_is_taken_over(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    requester, project, _ = await _project_with_answers(
        tasks_client, workers_client, payments_client, db, n_tasks=3
    )
    first = await _aggregated(tasks_client, requester, project["id"], "majority")
    assert first.status_code == 200
    run_id = await db.fetchval(
        "SELECT id FROM aggregation_runs WHERE project_id = $1", project["id"]
    )
    # Another process holds it (a live lease): this one reports it and starts nothing.
    await db.execute(
        "UPDATE aggregation_runs SET status = 'running', stage = 'aggregating', "
        "lease_until = now() + interval '1 hour' WHERE id = $1",
        run_id,
    )
    held = await _results(tasks_client, requester, project["id"], aggregation="majority")
    assert held.status_code == 202
    assert held.json()["id"] == run_id and held.json()["stage"] == "aggregating"
    # That process died: its lease ran out, and the next request runs it again.
    await db.execute(
        "UPDATE aggregation_runs SET lease_until = now() - interval '1 second' WHERE id = $1",
        run_id,
    )
    again = await _aggregated(tasks_client, requester, project["id"], "majority")
    assert again.status_code == 200
    assert again.json() == first.json()
    row = await db.fetchrow(
        "SELECT status, lease_until FROM aggregation_runs WHERE id = $1", run_id
    )
    assert row["status"] == "done" and row["lease_until"] is None


async def test_a_failed_run_is_retried_only_after_the_retry_delay(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db: Any,
) -> None:
    requester, project, _ = await _project_with_answers(
        tasks_client, workers_client, payments_client, db, n_tasks=3
    )
    first = await _aggregated(tasks_client, requester, project["id"], "majority")
    assert first.status_code == 200
    run_id = await db.fetchval(
        "SELECT id FROM aggregation_runs WHERE project_id = $1", project["id"]
    )
    # It failed a moment ago (as a method failing on this project's data would).
    await db.execute(
        "UPDATE aggregation_runs SET status = 'failed', stage = 'failed', error = 'boom', "
        "finished_at = now() WHERE id = $1",
        run_id,
    )
    for _ in range(3):  # every poll inside the retry delay gets the failure, not a new job
        failed = await _results(tasks_client, requester, project["id"], aggregation="majority")
        assert failed.status_code == 202
        assert failed.json()["id"] == run_id
        assert failed.json()["status"] == "failed" and failed.json()["error"] == "boom"
    # The delay (TASKS_AGGREGATION_RETRY_SECONDS, 30 s by default) has passed: retried.
    await db.execute(
        "UPDATE aggregation_runs SET finished_at = now() - interval '31 seconds' WHERE id = $1",
        run_id,
    )
    again = await _aggregated(tasks_client, requester, project["id"], "majority")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await db.fetchval("SELECT status FROM aggregation_runs WHERE id = $1", run_id) == "done"
