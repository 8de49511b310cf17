"""HotRoute (shared/hot_path.py): a hot route answered without FastAPI's dependency solving
must answer every request exactly as the same route with its dependencies solved would:
the same caller checks in the same order, the same problems, the same Idempotency-Key rules,
the same OpenAPI. Heartbeat, end and accept use it; each case is asked of the heartbeat and of
return, whose identical caller dependency FastAPI still solves, and the answers compared."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from shared.hot_path import HotRoute, WorkerCallDep
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.hourly import heartbeat, hourly_project, opened


async def test_the_heartbeat_checks_its_caller_as_a_solved_route_does(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    requester = await create_requester(workers_client)
    session = await opened(tasks_client, worker, project.id)
    path = f"/v1/work/sessions/{session['id']}/heartbeat"
    cases = {
        "no header": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": f"Basic {worker.api_key}"},
        "unknown key": {"Authorization": "Bearer mk_" + "0" * 40},
        "lower-case scheme": {"Authorization": f"bearer {worker.api_key}"},
        "requester": requester.headers,
        "long idempotency key": {**worker.headers, "Idempotency-Key": "k" * 256},
    }
    # Return has the same caller dependency, solved by FastAPI (it also takes BackgroundTasks);
    # the caller is refused before the assignment is looked at.
    solved_path = "/v1/assignments/" + "0" * 20 + "/return"
    answers, solved = {}, {}
    for name, headers in cases.items():
        resp = await tasks_client.post(path, headers=headers)
        answers[name] = (resp.status_code, resp.json().get("code"))
        assert resp.headers["content-type"].startswith(
            "application/problem+json" if resp.status_code >= 400 else "application/json"
        )
        if resp.status_code >= 400:
            other = await tasks_client.post(solved_path, headers=headers)
            solved[name] = (other.status_code, other.json().get("code"))
            assert other.json()["detail"] == resp.json()["detail"], name
    assert answers == {
        "no header": (401, "unauthorized"),
        "empty bearer": (401, "unauthorized"),
        "basic scheme": (401, "unauthorized"),
        "unknown key": (401, "unauthorized"),
        "lower-case scheme": (200, None),
        "requester": (403, "wrong_role"),
        "long idempotency key": (422, "validation_error"),
    }
    assert solved == {name: answer for name, answer in answers.items() if answer[0] >= 400}


async def test_the_heartbeat_honours_an_idempotency_key(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    worker = await create_worker(workers_client)
    session = await opened(tasks_client, worker, project.id)
    path = f"/v1/work/sessions/{session['id']}/heartbeat"
    headers = {**worker.headers, "Idempotency-Key": "beat-1"}
    first = await tasks_client.post(path, headers=headers)
    again = await tasks_client.post(path, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.headers["Idempotent-Replayed"] == "false"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    plain = await heartbeat(tasks_client, worker, session["id"])
    assert plain.headers["Idempotent-Replayed"] == "false"
    assert plain.json()["activity_events"] == first.json()["activity_events"] + 1


async def test_someone_elses_session_is_not_found(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project = await hourly_project(tasks_client, workers_client, payments_client)
    owner, other = await create_worker(workers_client), await create_worker(workers_client)
    session = await opened(tasks_client, owner, project.id)
    for path in ("heartbeat", "end"):
        resp = await tasks_client.post(
            f"/v1/work/sessions/{session['id']}/{path}", headers=other.headers
        )
        assert (resp.status_code, resp.json()["code"]) == (404, "not_found")


async def _poke_with_query(
    thing_id: str, call: WorkerCallDep, verbose: bool = Query(False)
) -> Response:
    raise AssertionError("never served")


async def _poke_number(number: int, call: WorkerCallDep) -> Response:
    raise AssertionError("never served")


async def _poke_anonymously(thing_id: str, request: Request) -> Response:
    raise AssertionError("never served")


@pytest.mark.parametrize(
    ("path", "endpoint", "message"),
    [
        ("/things/{thing_id}/poke", _poke_with_query, "one hot_call dependency"),
        ("/things/{number}/poke", _poke_number, "path parameters are strings"),
        ("/things/{thing_id}/poke", _poke_anonymously, "one hot_call dependency"),
    ],
)
def test_a_route_asking_for_more_than_hotroute_provides_is_refused_when_built(
    path: str, endpoint, message: str
) -> None:
    router = APIRouter(route_class=HotRoute)
    with pytest.raises(TypeError, match=message):
        router.add_api_route(path, endpoint, methods=["POST"])


async def test_a_router_included_with_dependencies_of_its_own_is_refused() -> None:
    async def audited() -> None:
        return None

    router = APIRouter(route_class=HotRoute)

    @router.post("/things/{thing_id}/poke")
    async def poke(thing_id: str, call: WorkerCallDep) -> Response:
        raise AssertionError("never served")

    app = FastAPI()
    app.include_router(router, dependencies=[Depends(audited)])
    # FastAPI builds an included route's handler the first time the route is matched.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(TypeError, match="router's dependencies"):
            await client.post("/things/1/poke")
