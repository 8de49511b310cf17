"""system.level as a project's requirement: accept reads it in its one eligibility statement,
and a project refusing bad level requirements (tests/shared/test_eligibility_level.py has the
comparators, guards and validation)."""

from __future__ import annotations

import httpx
import pytest

from shared.eligibility import LEVEL_TYPE_ID
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.levels import add_answers, pass_tests, settle
from tests.fixtures.tasks import PROJECT_DEFAULTS, accept, cat_tasks, published_project


def _level_requirement(comparator: str, *values: object, guard: str = "accept") -> dict:
    return {
        "qualification_type_id": LEVEL_TYPE_ID,
        "comparator": comparator,
        "values": list(values),
        "guard": guard,
    }


async def test_a_project_requiring_level_1_refuses_an_entry_worker_until_the_climb(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, payments_client, apps, db
) -> None:
    requester = await create_requester(workers_client)
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(2),
        requester=requester,
        qualification_requirements=[_level_requirement("gte", 1)],
    )
    experts_only = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1),
        requester=requester,
        qualification_requirements=[_level_requirement("eq", 3, guard="preview")],
    )
    worker = await create_worker(workers_client)
    preview = await tasks_client.get(f"/v1/work/projects/{project.id}", headers=worker.headers)
    assert preview.status_code == 200, preview.text  # an accept guard lets the worker look
    preview = await tasks_client.get(f"/v1/work/projects/{experts_only.id}", headers=worker.headers)
    assert preview.status_code == 403 and preview.json()["code"] == "not_qualified"
    assert [u["actual"] for u in preview.json()["unmet_requirements"]] == [0]
    resp = await accept(tasks_client, worker, project.id)
    assert resp.status_code == 403, resp.text
    problem = resp.json()
    assert problem["code"] == "not_qualified"
    assert [
        (u["qualification_type_id"], u["comparator"], u["values"], u["actual"])
        for u in problem["unmet_requirements"]
    ] == [(LEVEL_TYPE_ID, "gte", [1], 0)]

    await pass_tests(workers_client, requester, worker, 1)
    await add_answers(
        db, worker_id=worker.id, requester_id=requester.id, status="approved", count=50
    )
    assert await settle(apps["workers"], db, worker.id) == 1
    resp = await accept(tasks_client, worker, project.id)
    assert resp.status_code == 201, resp.text
    resp = await accept(tasks_client, worker, experts_only.id)
    assert resp.status_code == 403 and resp.json()["unmet_requirements"][0]["actual"] == 1


@pytest.mark.parametrize(
    ("requirement", "field"),
    [
        (_level_requirement("gte", 4), "levels 0 to 3"),
        (_level_requirement("above", 1), "comparator"),
        (_level_requirement("gte", "one"), "integers"),
    ],
)
async def test_a_project_with_a_bad_level_requirement_is_422(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    requirement: dict,
    field: str,
) -> None:
    requester = await create_requester(workers_client)
    before = await tasks_client.get("/v1/projects", headers=requester.headers)
    resp = await tasks_client.post(
        "/v1/projects",
        json={**PROJECT_DEFAULTS, "qualification_requirements": [requirement]},
        headers=requester.headers,
    )
    assert resp.status_code == 422, resp.text
    assert field in resp.text
    after = await tasks_client.get("/v1/projects", headers=requester.headers)
    assert after.json()["items"] == before.json()["items"] == []
