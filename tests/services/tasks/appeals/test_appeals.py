"""Appeals: the worker appeals a rejection once within 14 days; the requester lists, overturns
(paid exactly like an override, once, also racing a direct approval) or upholds; the scorecard
counts rejections given, appeals received and overturned (unanswered 7 days included)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx

from services.tasks.discovery import service as discovery
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import (
    approve,
    assert_ledger_ok,
    balance,
    cat_tasks,
    deposit,
    published_project,
    reject,
)
from tests.services.tasks.appeals.helpers import clock_at, expected, standing, submit_many

MESSAGE = "It is a cat: look at the whiskers in the corner."


async def appeal(
    tasks_client: httpx.AsyncClient, actor, assignment_id: str, message: str = MESSAGE
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/appeal", json={"message": message}, headers=actor.headers
    )


async def overturn(tasks_client: httpx.AsyncClient, requester, assignment_id: str, **body):
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/appeal/overturn",
        json=body or None,
        headers=requester.headers,
    )


async def uphold(tasks_client: httpx.AsyncClient, requester, assignment_id: str, reason: str):
    return await tasks_client.post(
        f"/v1/assignments/{assignment_id}/appeal/uphold",
        json={"reason": reason},
        headers=requester.headers,
    )


async def payouts(db, assignment_id: str) -> list:
    return await db.fetch(
        "SELECT amount_cents, fee_cents FROM ledger_transactions"
        " WHERE kind = 'payout' AND assignment_id = $1",
        assignment_id,
    )


async def rejected_work(tasks_client, workers_client, payments_client, n: int, **project_kw):
    """A project, a worker and `n` of its assignments rejected."""
    worker = await create_worker(workers_client)
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(n), **project_kw
    )
    ids = await submit_many(tasks_client, worker, project.id, n)
    for i in ids:
        assert (await reject(tasks_client, project.requester, i)).status_code == 200
    return project, worker, ids


async def test_appeal_overturned_pays_like_an_override_once_and_the_worker_sees_it(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(
        tasks_client, workers_client, payments_client, 2, extra_funds_cents=100
    )
    made = await appeal(tasks_client, worker, ids[0], message=f"  {MESSAGE}  ")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "open" and body["message"] == MESSAGE
    assert body["assignment_id"] == ids[0] and body["project_id"] == project.id
    assert body["reason"] is None and body["decided_at"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["answer_by"]) == created + timedelta(days=7)

    # the requester's open appeals, across projects and per project; the worker's own
    listed = await tasks_client.get(
        "/v1/assignments/appeals", params={"status": "open"}, headers=project.requester.headers
    )
    assert [a["id"] for a in listed.json()["items"]] == [body["id"]]
    per_project = await tasks_client.get(
        "/v1/assignments/appeals",
        params={"project_id": project.id},
        headers=project.requester.headers,
    )
    assert [a["id"] for a in per_project.json()["items"]] == [body["id"]]
    mine = await tasks_client.get("/v1/work/appeals", headers=worker.headers)
    assert mine.json()["items"] == [body]

    resp = await overturn(tasks_client, project.requester, ids[0], feedback="You were right.")
    assert resp.status_code == 200, resp.text
    decided = resp.json()
    assert decided["status"] == "overturned" and decided["reason"] == "You were right."
    assert decided["decided_at"] is not None
    # paid like an override: reward to the worker from the requester's available balance
    paid = await payouts(db, ids[0])
    assert [(p["amount_cents"], p["fee_cents"]) for p in paid] == [(10, 2)]
    assert (await balance(payments_client, worker))["available"] == 10
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", ids[0]) == "approved"
    assert await standing(workers_client, worker) == expected(1, 1)

    # a retry answers the same and pays nothing again; a direct approval is a no-op too
    again = await overturn(tasks_client, project.requester, ids[0])
    assert again.status_code == 200 and again.json() == decided
    assert (await approve(tasks_client, project.requester, ids[0])).status_code == 200
    assert len(await payouts(db, ids[0])) == 1

    # the worker sees the decision
    seen = await tasks_client.get(f"/v1/assignments/{ids[0]}/appeal", headers=worker.headers)
    assert seen.status_code == 200 and seen.json() == decided
    assert (
        await tasks_client.get(
            "/v1/work/appeals", params={"status": "open"}, headers=worker.headers
        )
    ).json()["items"] == []
    await assert_ledger_ok(payments_client)


async def test_bad_appeals_are_refused_and_change_nothing(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(tasks_client, workers_client, payments_client, 3)
    stranger = await create_worker(workers_client)

    theirs = await appeal(tasks_client, stranger, ids[0])
    assert theirs.status_code == 404 and theirs.json()["code"] == "not_found"
    as_requester = await appeal(tasks_client, project.requester, ids[0])
    assert as_requester.status_code == 403
    short = await appeal(tasks_client, worker, ids[0], message="no")
    assert short.status_code == 422
    unknown = await tasks_client.post(
        f"/v1/assignments/{ids[0]}/appeal",
        json={"message": MESSAGE, "x": 1},
        headers=worker.headers,
    )
    assert unknown.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM appeals WHERE worker_id = $1", worker.id) == 0

    assert (await appeal(tasks_client, worker, ids[0])).status_code == 201
    twice = await appeal(tasks_client, worker, ids[0])
    assert twice.status_code == 409 and twice.json()["code"] == "appeal_exists"

    # not rejected: approved work (an override) cannot be appealed
    await deposit(payments_client, project.requester, "0.12")
    assert (await approve(tasks_client, project.requester, ids[1])).status_code == 200
    approved = await appeal(tasks_client, worker, ids[1])
    assert approved.status_code == 409 and approved.json()["code"] == "invalid_state"

    # 14 days after the rejection: too late (just before: still in time, via the app's clock)
    reviewed_at = await db.fetchval("SELECT reviewed_at FROM assignments WHERE id = $1", ids[2])
    with clock_at(apps["tasks"], reviewed_at + timedelta(days=14, seconds=1)):
        late = await appeal(tasks_client, worker, ids[2])
    assert late.status_code == 409 and late.json()["code"] == "appeal_window_closed"
    assert await db.fetchval("SELECT count(*) FROM appeals WHERE worker_id = $1", worker.id) == 1
    with clock_at(apps["tasks"], reviewed_at + timedelta(days=13, hours=23)):
        assert (await appeal(tasks_client, worker, ids[2])).status_code == 201

    # someone else's appeal: 404 to read, overturn or uphold
    other = await create_requester(workers_client)
    assert (await overturn(tasks_client, other, ids[0])).status_code == 404
    assert (await uphold(tasks_client, other, ids[0], "Not convincing enough.")).status_code == 404
    for actor in (other, stranger):
        seen = await tasks_client.get(f"/v1/assignments/{ids[0]}/appeal", headers=actor.headers)
        assert seen.status_code == 404
    foreign = await tasks_client.get(
        "/v1/assignments/appeals", params={"project_id": project.id}, headers=other.headers
    )
    assert foreign.status_code == 404
    # an assignment of the requester's without an appeal
    assert (await overturn(tasks_client, project.requester, ids[1])).status_code == 404
    # the worker may not answer its own appeal
    assert (await overturn(tasks_client, worker, ids[0])).status_code == 403
    bad_filter = await tasks_client.get(
        "/v1/assignments/appeals", params={"status": "lost"}, headers=project.requester.headers
    )
    assert bad_filter.status_code == 422
    assert (
        await db.fetchval(
            "SELECT count(*) FROM appeals WHERE worker_id = $1 AND status = 'open'", worker.id
        )
    ) == 2


async def test_uphold_keeps_the_rejection_and_decided_appeals_stay_decided(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(
        tasks_client, workers_client, payments_client, 2, extra_funds_cents=100
    )
    for i in ids:
        assert (await appeal(tasks_client, worker, i)).status_code == 201

    short = await uphold(tasks_client, project.requester, ids[0], "no")
    assert short.status_code == 422
    resp = await uphold(tasks_client, project.requester, ids[0], "The photo shows a fox.")
    assert resp.status_code == 200, resp.text
    upheld = resp.json()
    assert upheld["status"] == "upheld" and upheld["reason"] == "The photo shows a fox."
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", ids[0]) == "rejected"
    assert (await uphold(tasks_client, project.requester, ids[0], "Other words here.")).json() == (
        upheld
    )
    late = await overturn(tasks_client, project.requester, ids[0])
    assert late.status_code == 409 and late.json()["code"] == "appeal_decided"
    assert await payouts(db, ids[0]) == []

    assert (await overturn(tasks_client, project.requester, ids[1])).status_code == 200
    flip = await uphold(tasks_client, project.requester, ids[1], "Changed my mind again.")
    assert flip.status_code == 409 and flip.json()["code"] == "appeal_decided"

    # a direct approval of the upheld one still reverses it (an override), and says so
    assert (await approve(tasks_client, project.requester, ids[0])).status_code == 200
    seen = await tasks_client.get(f"/v1/assignments/{ids[0]}/appeal", headers=worker.headers)
    assert seen.json()["status"] == "overturned"
    assert len(await payouts(db, ids[0])) == 1


async def test_overturn_without_funds_is_402_and_leaves_the_appeal_open(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(tasks_client, workers_client, payments_client, 1)
    assert (await appeal(tasks_client, worker, ids[0])).status_code == 201
    short = await overturn(tasks_client, project.requester, ids[0])
    assert short.status_code == 402 and short.json()["code"] == "insufficient_funds"
    seen = await tasks_client.get(f"/v1/assignments/{ids[0]}/appeal", headers=worker.headers)
    assert seen.json()["status"] == "open"
    assert await db.fetchval("SELECT status FROM assignments WHERE id = $1", ids[0]) == "rejected"
    # the appeal keeps the rejection open to an overturn past the 30-day override window
    await db.execute(
        "UPDATE assignments SET submitted_at = now() - interval '31 days' WHERE id = $1", ids[0]
    )
    await deposit(payments_client, project.requester, "0.12")
    direct = await approve(tasks_client, project.requester, ids[0])
    assert direct.status_code == 409  # the override window alone is closed
    assert (await overturn(tasks_client, project.requester, ids[0])).status_code == 200
    assert len(await payouts(db, ids[0])) == 1


async def test_overturn_racing_a_direct_approval_pays_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    rounds = 6
    project, worker, ids = await rejected_work(
        tasks_client, workers_client, payments_client, rounds, extra_funds_cents=12 * rounds
    )
    for i in ids:
        assert (await appeal(tasks_client, worker, i)).status_code == 201
    for k, i in enumerate(ids):
        racers = [
            overturn(tasks_client, project.requester, i),
            approve(tasks_client, project.requester, i),
        ]
        results = await asyncio.gather(*(racers if k % 2 else racers[::-1]))
        assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
        assert len(await payouts(db, i)) == 1
        assert await db.fetchval("SELECT status FROM appeals WHERE assignment_id = $1", i) == (
            "overturned"
        )
    assert (await balance(payments_client, worker))["available"] == 10 * rounds
    assert await standing(workers_client, worker) == expected(rounds, 0)
    await assert_ledger_ok(payments_client)


async def test_appeals_list_pages_newest_first(
    tasks_client: httpx.AsyncClient, workers_client, payments_client
) -> None:
    project, worker, ids = await rejected_work(tasks_client, workers_client, payments_client, 3)
    made = [(await appeal(tasks_client, worker, i)).json()["id"] for i in ids]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await tasks_client.get(
            "/v1/assignments/appeals", params=params, headers=project.requester.headers
        )
        assert page.status_code == 200, page.text
        seen += [a["id"] for a in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    tampered = await tasks_client.get(
        "/v1/work/appeals", params={"cursor": "abc"}, headers=worker.headers
    )
    assert tampered.status_code == 422 and tampered.json()["code"] == "invalid_cursor"


async def test_scorecard_counts_rejections_appeals_and_unanswered_as_overturned(
    apps: dict, tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(
        tasks_client, workers_client, payments_client, 4, extra_funds_cents=100
    )
    for i in ids[:3]:
        assert (await appeal(tasks_client, worker, i)).status_code == 201
    assert (await overturn(tasks_client, project.requester, ids[0])).status_code == 200
    assert (
        await uphold(tasks_client, project.requester, ids[1], "Wrong label, sorry.")
    ).status_code == 200
    # ids[2] stays open: 6 days and 23 hours do not count yet, 7 days do
    await db.execute(
        "UPDATE appeals SET created_at = now() - interval '6 days 23 hours'"
        " WHERE assignment_id = $1",
        ids[2],
    )

    async def card() -> dict:
        async with apps["tasks"].state.database.transaction() as tx:
            await discovery.refresh_scorecards_of(tx, [project.requester.id])
        viewer = await create_worker(workers_client)
        resp = await tasks_client.get(f"/v1/work/projects/{project.id}", headers=viewer.headers)
        assert resp.status_code == 200, resp.text
        stats = resp.json()["requester_stats"]
        return {k: stats[k] for k in ("rejections_given", "appeals_received", "appeals_overturned")}

    # 4 rejections given (the overturned one included), 3 appeals, 1 overturned
    assert await card() == {"rejections_given": 4, "appeals_received": 3, "appeals_overturned": 1}
    await db.execute(
        "UPDATE appeals SET created_at = now() - interval '7 days' WHERE assignment_id = $1",
        ids[2],
    )
    assert await card() == {"rejections_given": 4, "appeals_received": 3, "appeals_overturned": 2}
    # counted, not paid
    assert await payouts(db, ids[2]) == []
    assert (
        await db.fetchval("SELECT status FROM appeals WHERE assignment_id = $1", ids[2]) == "open"
    )


async def test_two_appeals_at_once_make_one_and_a_bulk_override_overturns_it(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project, worker, ids = await rejected_work(
        tasks_client, workers_client, payments_client, 1, extra_funds_cents=100
    )
    first, second = await asyncio.gather(
        appeal(tasks_client, worker, ids[0]), appeal(tasks_client, worker, ids[0])
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    refused = first if first.status_code == 409 else second
    assert refused.json()["code"] == "appeal_exists"
    assert await db.fetchval("SELECT count(*) FROM appeals WHERE assignment_id = $1", ids[0]) == 1

    # approving the rejected assignment in a bulk review is an override: it overturns the appeal
    resp = await tasks_client.post(
        "/v1/assignments/review",
        json={"approve": [{"id": ids[0], "feedback": "Fair point."}]},
        headers=project.requester.headers,
    )
    assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "ok", resp.text
    seen = await tasks_client.get(f"/v1/assignments/{ids[0]}/appeal", headers=worker.headers)
    assert (seen.json()["status"], seen.json()["reason"]) == ("overturned", "Fair point.")
    assert len(await payouts(db, ids[0])) == 1
    assert await standing(workers_client, worker) == expected(1, 0)
