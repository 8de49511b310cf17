"""The results export in json, jsonl and csv, and that it is really streamed."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import LiveServices
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.projects import (
    add_tasks,
    create_project,
    funded_published_project,
    insert_assignment,
)


async def _workers(workers_client: httpx.AsyncClient, n: int) -> list[Actor]:
    return [await create_worker(workers_client) for _ in range(n)]


async def _classification_project(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> tuple[Actor, dict[str, Any], list[str], list[Actor]]:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[
            {"input": {"image_url": "0.jpg"}, "external_id": "first"},
            {"input": {"image_url": "1.jpg"}},
            {"input": {"image_url": "2.jpg"}},
            {"input": {"image_url": "3.jpg"}, "gold_answer": {"label": "bird"}},
        ],
        assignments_per_task=4,
    )
    ids = [t["id"] for t in await _tasks(tasks_client, requester, project["id"])]
    workers = await _workers(workers_client, 4)
    plan = [
        # task 0: cat wins 2 of 3 votes; the rejected bird does not vote
        (0, 0, "approved", "cat"),
        (0, 1, "submitted", "cat"),
        (0, 2, "submitted", "dog"),
        (0, 3, "rejected", "bird"),
        # task 1: a 1-1 tie goes to the earlier label (cat before dog)
        (1, 0, "submitted", "dog"),
        (1, 1, "submitted", "cat"),
        # task 3: an accepted (unanswered) assignment is not an answer
        (3, 0, "accepted", None),
    ]
    for task_index, worker_index, status, label in plan:
        await insert_assignment(
            db,
            task_id=ids[task_index],
            worker_id=workers[worker_index].id,
            status=status,
            answer=None if label is None else {"label": label},
        )
    return requester, project, ids, workers


async def _tasks(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str
) -> list[dict[str, Any]]:
    resp = await tasks_client.get(
        f"/v1/projects/{project_id}/tasks", params={"limit": 200}, headers=requester.headers
    )
    assert resp.status_code == 200
    return sorted(resp.json()["items"], key=lambda t: t["id"])


def _check_records(records: list[dict[str, Any]], ids: list[str], workers: list[Actor]) -> None:
    assert [r["task_id"] for r in records] == ids  # upload order
    first, second, third, fourth = records
    assert first["external_id"] == "first" and first["input"] == {"image_url": "0.jpg"}
    answers = sorted((a["worker_id"], a["status"], a["answer"]["label"]) for a in first["answers"])
    assert answers == sorted(
        [
            (workers[0].id, "approved", "cat"),
            (workers[1].id, "submitted", "cat"),
            (workers[2].id, "submitted", "dog"),
            (workers[3].id, "rejected", "bird"),
        ]
    )
    ids_in_order = [a["assignment_id"] for a in first["answers"]]
    assert ids_in_order == sorted(ids_in_order)
    assert all(
        set(a) == {"assignment_id", "worker_id", "answer", "status"} for a in first["answers"]
    )
    assert first["aggregate"] == {"answer": {"label": "cat"}, "agreement": 0.67}
    assert second["aggregate"] == {"answer": {"label": "cat"}, "agreement": 0.5}
    assert third["answers"] == [] and third["aggregate"] == {"answer": None, "agreement": None}
    assert fourth["answers"] == [] and fourth["external_id"] is None


async def test_json_results(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester, project, ids, workers = await _classification_project(
        tasks_client, workers_client, payments_client, db
    )
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/results", headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    _check_records(resp.json(), ids, workers)


async def test_jsonl_results(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester, project, ids, workers = await _classification_project(
        tasks_client, workers_client, payments_client, db
    )
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/results",
        params={"format": "jsonl"},
        headers=requester.headers,
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = resp.content.decode().splitlines()
    _check_records([orjson.loads(line) for line in lines], ids, workers)


async def test_csv_results(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester, project, ids, workers = await _classification_project(
        tasks_client, workers_client, payments_client, db
    )
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/results",
        params={"format": "csv"},
        headers=requester.headers,
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode())))
    assert rows[0] == [
        "task_id",
        "external_id",
        "input",
        "aggregate_answer",
        "agreement",
        "answers",
    ]
    records = [
        {
            "task_id": r[0],
            "external_id": r[1] or None,
            "input": orjson.loads(r[2]),
            "aggregate": {
                "answer": orjson.loads(r[3]) if r[3] else None,
                "agreement": float(r[4]) if r[4] else None,
            },
            "answers": orjson.loads(r[5]),
        }
        for r in rows[1:]
    ]
    assert rows[1][4] == "0.67"
    _check_records(records, ids, workers)


async def test_multi_label_sentiment_and_transcription_aggregates(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    workers = await _workers(workers_client, 3)
    cases: list[tuple[dict[str, Any], list[Any], Any, float | None]] = [
        (
            {"multi_label": True, "labels": ["x", "y", "z"]},
            [{"labels": ["y", "x"]}, {"labels": ["x", "y"]}, {"labels": ["z"]}],
            {"labels": ["x", "y"]},
            0.67,
        ),
        (
            {"task_type": "sentiment", "labels": None},
            [{"label": "negative"}, {"label": "neutral"}, {"label": "neutral"}],
            {"label": "neutral"},
            0.67,
        ),
        (
            {"task_type": "transcription", "labels": None},
            [{"text": "a"}, {"text": "a"}, {"text": "b"}],
            None,
            None,
        ),
    ]
    for overrides, answers, expected, agreement in cases:
        project = await funded_published_project(
            tasks_client, payments_client, requester, tasks=[{"input": {"n": 1}}], **overrides
        )
        [task] = await _tasks(tasks_client, requester, project["id"])
        for worker, answer in zip(workers, answers, strict=True):
            await insert_assignment(
                db, task_id=task["id"], worker_id=worker.id, status="submitted", answer=answer
            )
        [record] = (
            await tasks_client.get(
                f"/v1/projects/{project['id']}/results", headers=requester.headers
            )
        ).json()
        assert record["aggregate"] == {"answer": expected, "agreement": agreement}, overrides
        assert len(record["answers"]) == 3


async def test_results_of_a_draft_and_bad_requests(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    url = f"/v1/projects/{project['id']}/results"
    empty = await tasks_client.get(url, headers=requester.headers)
    assert empty.status_code == 200 and empty.json() == []
    for fmt in ("jsonl", "csv"):
        resp = await tasks_client.get(url, params={"format": fmt}, headers=requester.headers)
        assert resp.status_code == 200
    assert (
        await tasks_client.get(url, params={"format": "csv"}, headers=requester.headers)
    ).text == ("task_id,external_id,input,aggregate_answer,agreement,answers\r\n")
    bad = await tasks_client.get(url, params={"format": "xml"}, headers=requester.headers)
    assert bad.status_code == 422
    worker = await create_worker(workers_client)
    assert (await tasks_client.get(url, headers=worker.headers)).status_code == 403


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
async def test_results_are_streamed_in_chunks_over_real_http(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    live_services: LiveServices,
    db,
    fmt: str,
) -> None:
    """Against the live process: a project larger than one batch (500 rows by default) arrives
    as several chunks, so the server never held the whole export."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [{"input": {"i": i, "pad": "x" * 200}} for i in range(3_000)],
    )
    chunks = 0
    body = bytearray()
    async with (
        httpx.AsyncClient(base_url=live_services.urls["tasks"], timeout=30) as client,
        client.stream(
            "GET",
            f"/v1/projects/{project['id']}/results",
            params={"format": fmt},
            headers=requester.headers,
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers.get("transfer-encoding") == "chunked"
        async for chunk in resp.aiter_raw():
            chunks += 1
            body += chunk
    assert chunks > 1
    text = body.decode()
    if fmt == "json":
        count = len(orjson.loads(text))
    elif fmt == "jsonl":
        count = len(text.splitlines())
    else:
        count = len(list(csv.reader(io.StringIO(text)))) - 1
    assert count == 3_000
