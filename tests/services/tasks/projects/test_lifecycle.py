"""The project state machine and the money it moves, checked on the payments side."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN, ServiceMesh
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import balance, deposit
from tests.fixtures.projects import (
    add_tasks,
    create_project,
    image_tasks,
    insert_assignment,
    publish,
    task_ids,
)


async def _post(client: httpx.AsyncClient, actor: Actor, path: str, **kw: Any) -> httpx.Response:
    return await client.post(path, headers={**actor.headers, **kw.pop("headers", {})}, **kw)


async def _ledger_ok(payments_client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await payments_client.get(
        "/internal/ledger/check", headers={"X-Internal-Token": INTERNAL_TOKEN}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _wait_for_balance(
    payments_client: httpx.AsyncClient, requester: Actor, expected: dict[str, str]
) -> dict[str, str]:
    """Releases travel through the outbox after commit: poll until they land (or time out)."""
    deadline = time.monotonic() + 15
    while True:
        money = await balance(payments_client, requester)
        if all(money[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
            return money
        await asyncio.sleep(0.1)


async def test_publish_reserves_every_slot_and_starts_lifetimes(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="0.50", lifetime_seconds=7200)
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [*image_tasks(3), {"input": {"x": 1}, "max_assignments": 1}],
    )
    await deposit(payments_client, requester, "20.00")
    published = await publish(tasks_client, requester, project["id"])
    assert published["status"] == "published" and published["published_at"] is not None
    # (3 tasks x 3 + 1) slots x (0.50 + 0.10)
    assert published["money"] == {"reserved": "6.00", "spent": "0.00"}
    assert published["counts"]["open_slots"] == 10
    money = await balance(payments_client, requester)
    assert (money["available"], money["reserved"]) == ("14.00", "6.00")
    # Every task's lifetime starts at publish, as its owner reads it (the rows themselves
    # inherit the project's expiry: publish wrote the project row only).
    resp = await tasks_client.get(f"/v1/projects/{project['id']}/tasks", headers=requester.headers)
    assert resp.status_code == 200, resp.text
    published_at = datetime.fromisoformat(published["published_at"])
    lifetimes = {
        (datetime.fromisoformat(t["expires_at"]) - published_at).total_seconds()
        for t in resp.json()["items"]
    }
    assert lifetimes == {7200}
    assert (await _ledger_ok(payments_client))["ok"] is True


async def test_insufficient_funds_leaves_a_draft_and_changes_nothing(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="1.00")
    await add_tasks(tasks_client, requester, project["id"], image_tasks(10))  # 30 x 1.20 = 36.00
    await deposit(payments_client, requester, "35.99")
    before = await db.fetch(
        "SELECT id, expires_at, open_slots FROM tasks WHERE project_id = $1 ORDER BY id",
        project["id"],
    )
    resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/publish")
    assert resp.status_code == 402 and resp.json()["code"] == "insufficient_funds"
    row = await db.fetchrow(
        "SELECT status, published_at FROM projects WHERE id = $1", project["id"]
    )
    assert (row["status"], row["published_at"]) == ("draft", None)
    after = await db.fetch(
        "SELECT id, expires_at, open_slots FROM tasks WHERE project_id = $1 ORDER BY id",
        project["id"],
    )
    assert after == before
    assert await balance(payments_client, requester) == {
        "available": "35.99",
        "reserved": "0.00",
        "spent": "0.00",
    }
    await deposit(payments_client, requester, "0.01")  # now exactly enough
    published = await publish(tasks_client, requester, project["id"])
    assert published["money"]["reserved"] == "36.00"
    assert (await balance(payments_client, requester))["available"] == "0.00"


async def test_publishing_twice_is_409_even_concurrently_and_reserves_once(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(2))  # 6 x 0.30 = 1.80
    await deposit(payments_client, requester, "10.00")
    responses = await asyncio.gather(
        *(_post(tasks_client, requester, f"/v1/projects/{project['id']}/publish") for _ in range(6))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409, 409, 409]
    assert all(r.json()["code"] == "invalid_state" for r in responses if r.status_code == 409)
    assert (await balance(payments_client, requester))["reserved"] == "1.80"


async def test_idempotent_publish_replays_the_first_answer(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(1))
    await deposit(payments_client, requester, "10.00")
    path = f"/v1/projects/{project['id']}/publish"
    key = {"Idempotency-Key": f"publish-{project['id']}"}
    first = await _post(tasks_client, requester, path, headers=key)
    again = await _post(tasks_client, requester, path, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert (await balance(payments_client, requester))["reserved"] == "0.90"


async def test_a_project_without_tasks_can_be_published_and_filled_later(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    published = await publish(tasks_client, requester, project["id"])
    assert published["status"] == "published" and published["money"]["reserved"] == "0.00"
    await deposit(payments_client, requester, "1.00")
    await add_tasks(tasks_client, requester, project["id"], image_tasks(1))
    assert (await balance(payments_client, requester))["reserved"] == "0.90"


@pytest.mark.parametrize(
    ("path", "from_status", "to_status"),
    [
        ("pause", "published", "paused"),
        ("resume", "paused", "published"),
        ("close", "draft", "closed"),
        ("close", "published", "closed"),
        ("close", "paused", "closed"),
    ],
)
async def test_allowed_transitions(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    path: str,
    from_status: str,
    to_status: str,
) -> None:
    requester = await create_requester(workers_client)
    project = await _project_in(tasks_client, payments_client, requester, from_status)
    resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/{path}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == to_status
    if to_status == "closed":
        assert resp.json()["closed_at"] is not None


WRONG_STATE = [
    ("publish", "published"),
    ("publish", "paused"),
    ("publish", "closed"),
    ("pause", "draft"),
    ("pause", "paused"),
    ("pause", "closed"),
    ("resume", "draft"),
    ("resume", "published"),
    ("resume", "closed"),
    ("close", "closed"),
]


@pytest.mark.parametrize(("path", "status"), WRONG_STATE)
async def test_wrong_state_is_409_and_changes_nothing(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
    path: str,
    status: str,
) -> None:
    requester = await create_requester(workers_client)
    project = await _project_in(tasks_client, payments_client, requester, status)
    money_before = await balance(payments_client, requester)
    row_before = await db.fetchrow("SELECT * FROM projects WHERE id = $1", project["id"])
    resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/{path}")
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "invalid_state"
    assert await db.fetchrow("SELECT * FROM projects WHERE id = $1", project["id"]) == row_before
    assert await balance(payments_client, requester) == money_before


async def _project_in(
    tasks_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    requester: Actor,
    status: str,
) -> dict[str, Any]:
    project = await create_project(tasks_client, requester)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(1))
    if status == "draft":
        return project
    if status == "closed":
        resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/close")
        assert resp.status_code == 200
        return resp.json()
    await deposit(payments_client, requester, "5.00")
    project = await publish(tasks_client, requester, project["id"])
    if status == "paused":
        resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/pause")
        assert resp.status_code == 200
        project = resp.json()
    return project


async def test_close_releases_unused_slots_and_keeps_in_flight_money(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="1.00")  # slot = 1.20
    await add_tasks(tasks_client, requester, project["id"], image_tasks(2))  # 6 slots = 7.20
    await deposit(payments_client, requester, "10.00")
    await publish(tasks_client, requester, project["id"])
    ids = await task_ids(db, project["id"])
    worker = await create_worker(workers_client)
    await insert_assignment(db, task_id=ids[0], worker_id=worker.id, status="accepted")
    resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/close")
    assert resp.status_code == 200, resp.text
    closed = resp.json()
    assert closed["status"] == "closed"
    assert closed["counts"]["open_slots"] == 0 and closed["counts"]["accepted"] == 1
    assert closed["money"]["reserved"] == "1.20"  # only the in-flight assignment's slot
    money = await _wait_for_balance(
        payments_client, requester, {"available": "8.80", "reserved": "1.20"}
    )
    assert (money["available"], money["reserved"]) == ("8.80", "1.20")
    assert (await _ledger_ok(payments_client))["ok"] is True
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE key = $1", f"release:close:{project['id']}"
        )
        == 1
    )


async def test_closing_a_draft_moves_no_money(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(3))
    resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/close")
    assert resp.status_code == 200
    assert resp.json()["counts"]["open_slots"] == 0
    assert resp.json()["money"] == {"reserved": "0.00", "spent": "0.00"}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM outbox WHERE payload->>'project_id' = $1", project["id"]
        )
        == 0
    )


async def test_patch_on_live_and_closed_projects(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    requester = await create_requester(workers_client)
    project = await _project_in(tasks_client, payments_client, requester, "published")
    url = f"/v1/projects/{project['id']}"
    ok = await tasks_client.patch(
        url,
        json={
            "title": "Sharper title",
            "instructions": "New guidelines",
            "keywords": ["k"],
            "auto_approve_seconds": 3600,
            "estimated_seconds_per_assignment": 20,
        },
        headers=requester.headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["title"] == "Sharper title" and ok.json()["auto_approve_seconds"] == 3600
    for frozen in (
        {"reward": "5.00"},
        {"assignments_per_task": 5},
        {"labels": ["x", "y"]},
        {"task_type": "sentiment"},
        {"lifetime_seconds": 999},
    ):
        resp = await tasks_client.patch(url, json=frozen, headers=requester.headers)
        assert resp.status_code == 409, (frozen, resp.text)
        assert resp.json()["code"] == "invalid_state"
    same = await tasks_client.patch(
        url,
        json={"reward": "0.25", "assignments_per_task": 3, "title": "Same money"},
        headers=requester.headers,
    )
    assert same.status_code == 200 and same.json()["title"] == "Same money"
    row = await db.fetchrow(
        "SELECT reward_cents, assignments_per_task FROM projects WHERE id = $1", project["id"]
    )
    assert (row["reward_cents"], row["assignments_per_task"]) == (25, 3)
    await _post(tasks_client, requester, f"/v1/projects/{project['id']}/close")
    closed = await tasks_client.patch(url, json={"title": "late"}, headers=requester.headers)
    assert closed.status_code == 409 and closed.json()["code"] == "invalid_state"


async def test_payments_down_is_503_and_nothing_changes(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
    mesh: ServiceMesh,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(1))
    await deposit(payments_client, requester, "5.00")
    mesh.stop("payments")
    try:
        resp = await _post(tasks_client, requester, f"/v1/projects/{project['id']}/publish")
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "dependency_unavailable"
        assert int(resp.headers["Retry-After"]) > 0
        status = await db.fetchval("SELECT status FROM projects WHERE id = $1", project["id"])
        assert status == "draft"
        assert (
            await db.fetchval(
                "SELECT count(*) FROM tasks WHERE project_id = $1 AND expires_at IS NOT NULL",
                project["id"],
            )
            == 0
        )
    finally:
        mesh.start("payments")
    assert (await balance(payments_client, requester))["reserved"] == "0.00"
    published = await publish(tasks_client, requester, project["id"])  # the retry works
    assert published["money"]["reserved"] == "0.90"


async def test_uploads_racing_publish_and_close_keep_the_money_exact(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    """Every task is paid for exactly once whichever commits first: reserved at publish if it
    was there, at upload if it came later, and released at close either way."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)  # 3 slots x 0.30 per task
    await add_tasks(tasks_client, requester, project["id"], image_tasks(2))
    await deposit(payments_client, requester, "100.00")
    base = f"/v1/projects/{project['id']}"

    def upload(n: int) -> Any:
        return _post(tasks_client, requester, f"{base}/tasks", json={"tasks": image_tasks(n)})

    first = await asyncio.gather(
        _post(tasks_client, requester, f"{base}/publish"), *(upload(3) for _ in range(4))
    )
    assert [r.status_code for r in first] == [200, 201, 201, 201, 201]
    view = (await tasks_client.get(base, headers=requester.headers)).json()
    assert view["counts"]["tasks"] == 14 and view["money"]["reserved"] == "12.60"
    assert (await balance(payments_client, requester))["reserved"] == "12.60"

    second = await asyncio.gather(
        _post(tasks_client, requester, f"{base}/close"), *(upload(2) for _ in range(4))
    )
    assert second[0].status_code == 200
    assert {r.status_code for r in second[1:]} <= {201, 409}
    money = await _wait_for_balance(
        payments_client, requester, {"available": "100.00", "reserved": "0.00"}
    )
    assert money["available"] == "100.00" and money["reserved"] == "0.00"
    assert (await _ledger_ok(payments_client))["ok"] is True


async def _task_rows(db, project_id: str) -> list[tuple[Any, ...]]:
    """Each task row's physical identity: `xmin` (the transaction that wrote this version) and
    `ctid` (where it sits) change whenever anything rewrites the row."""
    rows = await db.fetch(
        "SELECT id, xmin::text AS xmin, ctid::text AS ctid, open_slots, expires_at FROM tasks"
        " WHERE project_id = $1 ORDER BY id",
        project_id,
    )
    return [tuple(r.values()) for r in rows]


async def test_publish_pause_and_resume_leave_every_task_row_untouched(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """Publishing is a change of the project row: tasks go in with their slots open and inherit
    the project's expiry, so not one task row is rewritten (bench/RESULTS.md, proposal 7)."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, reward="0.50", lifetime_seconds=7200)
    await add_tasks(tasks_client, requester, project["id"], image_tasks(150))
    await add_tasks(
        tasks_client,
        requester,
        project["id"],
        [*image_tasks(149, start=150), {"input": {"x": 1}, "max_assignments": 1}],
    )
    await deposit(payments_client, requester, "600.00")
    before = await _task_rows(db, project["id"])
    assert len(before) == 300
    assert {r[3] for r in before} == {3, 1} and {r[4] for r in before} == {None}

    published = await publish(tasks_client, requester, project["id"])
    assert await _task_rows(db, project["id"]) == before
    # (299 x 3 + 1) slots x (0.50 + 0.10) reserved, all of them open.
    assert published["counts"] == {**published["counts"], "tasks": 300, "open_slots": 898}
    assert published["money"] == {"reserved": "538.80", "spent": "0.00"}
    assert (await balance(payments_client, requester))["reserved"] == "538.80"

    base = f"/v1/projects/{project['id']}"
    worker = await create_worker(workers_client)
    assert (await _post(tasks_client, requester, f"{base}/pause")).status_code == 200
    paused_accept = await _post(tasks_client, worker, f"/v1/work/projects/{project['id']}/accept")
    assert paused_accept.status_code == 404, paused_accept.text
    assert (await _post(tasks_client, requester, f"{base}/resume")).status_code == 200
    assert await _task_rows(db, project["id"]) == before

    work = await _post(tasks_client, worker, f"/v1/work/projects/{project['id']}/accept")
    assert work.status_code == 201, work.text
    task = (
        await tasks_client.get(f"/v1/tasks/{work.json()['task_id']}", headers=requester.headers)
    ).json()
    expires = datetime.fromisoformat(task["expires_at"])
    assert (expires - datetime.fromisoformat(published["published_at"])).total_seconds() == 7200
    assert (await _ledger_ok(payments_client))["ok"] is True


async def test_tasks_stop_being_offered_when_the_projects_lifetime_ends_but_later_ones_stay(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    db,
) -> None:
    """Tasks uploaded before publish expire with the project's lifetime, those added later with
    their own: once the first have expired (and before the lifetime sweep got to them), racing
    accepts only ever get the later ones."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, assignments_per_task=2)
    early = (await add_tasks(tasks_client, requester, project["id"], image_tasks(8)))["task_ids"]
    await deposit(payments_client, requester, "20.00")
    await publish(tasks_client, requester, project["id"])
    later = (await add_tasks(tasks_client, requester, project["id"], image_tasks(3, start=8)))[
        "task_ids"
    ]
    await db.execute(
        "UPDATE projects SET tasks_expire_at = now() - interval '1 second' WHERE id = $1",
        project["id"],
    )
    crowd = [await create_worker(workers_client) for _ in range(9)]
    answers = await asyncio.gather(
        *(_post(tasks_client, w, f"/v1/work/projects/{project['id']}/accept") for w in crowd)
    )
    taken = [r.json()["task_id"] for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    assert len(taken) == 6 and set(taken) == set(later)  # 3 later tasks x 2 slots
    assert [(r.status_code, r.json()["code"]) for r in refused] == [(404, "no_work_available")] * 3
    open_early = await db.fetchval(
        "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status = 'open' AND open_slots = 2",
        early,
    )
    assert open_early == 8  # not yet swept, yet never offered
