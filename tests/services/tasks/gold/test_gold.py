"""Gold tasks: grading at submit, min_gold_accuracy at accept, the owner's per-worker page."""

from __future__ import annotations

import httpx
import pytest

from services.tasks.gold.service import gold_accuracy_failed, is_gold_correct
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    accept,
    accepted,
    approve,
    cat_tasks,
    published_project,
    reject,
    submit,
)


@pytest.mark.parametrize(
    ("task_type", "answer", "gold", "correct"),
    [
        ("classification", {"label": "cat"}, {"label": "cat"}, True),
        ("classification", {"label": "dog"}, {"label": "cat"}, False),
        ("classification", {"labels": ["b", "a"]}, {"labels": ["a", "b"]}, True),
        ("classification", {"labels": ["a"]}, {"labels": ["a", "b"]}, False),
        ("sentiment", {"label": "neutral"}, {"label": "neutral"}, True),
        ("transcription", {"text": " Hello   World "}, {"text": "hello world"}, True),
        ("transcription", {"text": "hello word"}, {"text": "hello world"}, False),
        (
            "bounding_box",
            {"boxes": [{"label": "cat", "x": 0.11, "y": 0.1, "width": 0.5, "height": 0.5}]},
            {"boxes": [{"label": "cat", "x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5}]},
            True,
        ),
        (
            "bounding_box",
            {"boxes": [{"label": "cat", "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2}]},
            {"boxes": [{"label": "cat", "x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2}]},
            False,
        ),
        (
            "bounding_box",
            {"boxes": [{"label": "dog", "x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5}]},
            {"boxes": [{"label": "cat", "x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5}]},
            False,
        ),
        ("free_form", {"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, True),
        ("free_form", {"a": 1}, {"a": 2}, False),
    ],
)
def test_gold_grading(task_type: str, answer: dict, gold: dict, correct: bool) -> None:
    assert is_gold_correct(task_type=task_type, answer=answer, gold_answer=gold) is correct


def test_accuracy_is_judged_after_three_gold_answers() -> None:
    assert not gold_accuracy_failed(min_gold_accuracy=80, answered=2, correct=0)
    assert gold_accuracy_failed(min_gold_accuracy=80, answered=3, correct=2)
    assert not gold_accuracy_failed(min_gold_accuracy=66, answered=3, correct=2)
    assert not gold_accuracy_failed(min_gold_accuracy=None, answered=10, correct=0)


async def test_low_gold_accuracy_stops_work_and_the_owner_sees_it(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    tasks = [
        {
            "input": {"image_url": f"https://img.example/gold/{i}.jpg"},
            "gold_answer": {"label": "cat"},
        }
        for i in range(4)
    ] + cat_tasks(2)
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=tasks,
        min_gold_accuracy=60,
        assignments_per_task=2,
    )
    gold_ids = set(project.task_ids[:4])
    careless, careful = await create_worker(workers_client), await create_worker(workers_client)

    answered = []
    while len([a for a in answered if a["task_id"] in gold_ids]) < 3:
        work = await accepted(tasks_client, careless, project.id)
        resp = await submit(tasks_client, careless, work["assignment_id"], {"label": "dog"})
        assert resp.status_code == 200
        answered.append(work)
    # 3 gold answers, all wrong: below 60% -> no more work for this worker
    resp = await accept(tasks_client, careless, project.id)
    assert resp.status_code == 403 and resp.json()["code"] == "gold_accuracy_too_low"
    row = await db.fetchrow(
        "SELECT answered, correct FROM gold_stats WHERE project_id = $1 AND worker_id = $2",
        project.id,
        careless.id,
    )
    assert (row["answered"], row["correct"]) == (3, 0)

    for _ in range(3):
        work = await accepted(tasks_client, careful, project.id)
        assert (
            await submit(tasks_client, careful, work["assignment_id"], {"label": "cat"})
        ).status_code == 200
    mine = await tasks_client.get(
        "/v1/workers/me/assignments", params={"status": "submitted"}, headers=careful.headers
    )
    first_three = [i["id"] for i in mine.json()["items"]]
    assert (await approve(tasks_client, project.requester, first_three[0])).status_code == 200
    assert (await reject(tasks_client, project.requester, first_three[1])).status_code == 200

    page = await tasks_client.get(
        f"/v1/projects/{project.id}/workers", headers=project.requester.headers
    )
    assert page.status_code == 200, page.text
    stats = {i["worker_id"]: i for i in page.json()["items"]}
    bad = stats[careless.id]
    assert bad["gold_answered"] == 3 and bad["gold_correct"] == 0
    assert bad["gold_accuracy"] == 0 and bad["below_min_gold_accuracy"] is True
    assert bad["submitted"] == len(answered)
    good = stats[careful.id]
    golds = good["gold_answered"]
    assert good["gold_correct"] == golds and (golds == 0 or good["gold_accuracy"] == 100)
    assert good["below_min_gold_accuracy"] is False
    assert (good["submitted"], good["approved"], good["rejected"], good["pending_review"]) == (
        3,
        1,
        1,
        1,
    )
    # newest worker account first, and only for the owner
    assert [i["worker_id"] for i in page.json()["items"]] == [careful.id, careless.id]
    assert (
        await tasks_client.get(f"/v1/projects/{project.id}/workers", headers=careful.headers)
    ).status_code == 403
    other = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    assert (
        await tasks_client.get(
            f"/v1/projects/{project.id}/workers", headers=other.requester.headers
        )
    ).status_code == 404


async def test_project_workers_page_by_page(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1), assignments_per_task=3
    )
    crowd = [await create_worker(workers_client) for _ in range(3)]
    for worker in crowd:
        work = await accepted(tasks_client, worker, project.id)
        await submit(tasks_client, worker, work["assignment_id"], {"label": "cat"})
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await tasks_client.get(
                f"/v1/projects/{project.id}/workers",
                params=params,
                headers=project.requester.headers,
            )
        ).json()
        seen += [i["worker_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted((w.id for w in crowd), reverse=True)
