"""Qualification types: create, search, read (answer keys owner-only), update, (de)activate."""

from __future__ import annotations

import copy

import httpx
import pytest

from shared.eligibility import APPROVAL_RATE_TYPE_ID, APPROVED_COUNT_TYPE_ID, COUNTRY_TYPE_ID
from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import SAMPLE_KEY, SAMPLE_TEST, create_type


async def test_create_and_read_with_answer_key_for_the_owner_only(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    created = await create_type(
        workers_client,
        owner,
        name="Bird spotter",
        keywords=["Birds", "ornithology", "birds"],
        test=SAMPLE_TEST,
        answer_key=SAMPLE_KEY,
        retry_delay_seconds=3600,
    )
    assert created["owner_id"] == owner.id and created["status"] == "active"
    assert created["has_test"] is True and created["is_system"] is False
    assert created["keywords"] == ["birds", "ornithology"]
    assert created["answer_key"]["answers"]["q4"] == {"correct": 42, "score": 4}
    assert created["answer_key"]["mapping"] == "percentage"
    assert created["auto_grant"] is False and created["auto_grant_value"] == 1

    url = f"/v1/qualification-types/{created['id']}"
    as_owner = (await workers_client.get(url, headers=owner.headers)).json()
    assert as_owner["answer_key"] == created["answer_key"]
    for viewer in (worker, other):
        resp = await workers_client.get(url, headers=viewer.headers)
        assert resp.status_code == 200
        body = resp.json()
        assert "answer_key" not in body
        assert "correct" not in resp.text
        assert [q["id"] for q in body["test"]["questions"]] == ["q1", "q2", "q3", "q4"]


async def test_name_is_unique_per_requester(workers_client: httpx.AsyncClient, db) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    await create_type(workers_client, owner, name="English level")
    dup = await workers_client.post(
        "/v1/qualification-types", json={"name": "ENGLISH LEVEL"}, headers=owner.headers
    )
    assert dup.status_code == 409 and dup.json()["code"] == "name_taken"
    assert (
        await db.fetchval("SELECT count(*) FROM qualification_types WHERE owner_id = $1", owner.id)
        == 1
    )
    await create_type(workers_client, other, name="English level")


async def test_only_requesters_create_types(workers_client: httpx.AsyncClient) -> None:
    worker = await create_worker(workers_client)
    resp = await workers_client.post(
        "/v1/qualification-types", json={"name": "x"}, headers=worker.headers
    )
    assert resp.status_code == 403 and resp.json()["code"] == "wrong_role"
    assert (
        await workers_client.post("/v1/qualification-types", json={"name": "x"})
    ).status_code == 401


def _without(key: str) -> dict:
    test = copy.deepcopy(SAMPLE_TEST)
    test["questions"] = [q for q in test["questions"] if q["id"] != key]
    return test


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "system.approval_rate"},
        {"name": "x", "auto_grant": True, "test": SAMPLE_TEST},
        {"name": "x", "answer_key": SAMPLE_KEY},
        {"name": "x", "test": _without("q4"), "answer_key": SAMPLE_KEY},
        {"name": "x", "test": SAMPLE_TEST, "answer_key": {"answers": {"q1": {"correct": "a"}}}},
        {"name": "x", "test": SAMPLE_TEST, "answer_key": {"answers": {"q1": {"correct": ["z"]}}}},
        {"name": "x", "test": SAMPLE_TEST, "answer_key": {"answers": {"q3": {"correct": 3}}}},
        {"name": "x", "test": SAMPLE_TEST, "answer_key": {"answers": {"q4": {"correct": "42"}}}},
        {
            "name": "x",
            "test": SAMPLE_TEST,
            "answer_key": {"answers": {"q1": {"correct": ["a"], "score": 0}}},
        },
        {"name": "x", "test": SAMPLE_TEST, "answer_key": {"answers": {}}},
        {"name": "x", "test": {**SAMPLE_TEST, "duration_seconds": 0}},
        {"name": "x", "test": {"questions": [], "duration_seconds": 60}},
        {
            "name": "x",
            "test": {
                "questions": [
                    {
                        "id": "q",
                        "prompt": "p",
                        "kind": "single_choice",
                        "options": [{"id": "a", "text": "a"}],
                    }
                ],
                "duration_seconds": 60,
            },
        },
        {
            "name": "x",
            "test": {
                "questions": [
                    {"id": "q", "prompt": "p", "kind": "text"},
                    {"id": "q", "prompt": "p", "kind": "number"},
                ],
                "duration_seconds": 60,
            },
        },
        {
            "name": "x",
            "test": {
                "questions": [{"id": "q", "prompt": "p", "kind": "essay"}],
                "duration_seconds": 60,
            },
        },
        {"name": "x", "retry_delay_seconds": -1},
        {"name": "x", "status": "archived"},
        {"name": "x", "owner_id": "someone"},
    ],
)
async def test_invalid_types_are_422_and_create_nothing(
    workers_client: httpx.AsyncClient, db, body: dict
) -> None:
    owner = await create_requester(workers_client)
    resp = await workers_client.post("/v1/qualification-types", json=body, headers=owner.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "validation_error"
    assert (
        await db.fetchval("SELECT count(*) FROM qualification_types WHERE owner_id = $1", owner.id)
        == 0
    )


async def test_create_replays_with_the_same_idempotency_key(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    headers = {**owner.headers, "Idempotency-Key": new_id()}
    body = {"name": "Replayed", "keywords": ["a"]}
    first = await workers_client.post("/v1/qualification-types", json=body, headers=headers)
    second = await workers_client.post("/v1/qualification-types", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = await workers_client.post(
        "/v1/qualification-types", json={"name": "Other"}, headers=headers
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert (
        await db.fetchval("SELECT count(*) FROM qualification_types WHERE owner_id = $1", owner.id)
        == 1
    )


async def test_inactive_types_are_hidden_from_everyone_but_the_owner(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, status="inactive")
    url = f"/v1/qualification-types/{qtype['id']}"
    assert (await workers_client.get(url, headers=owner.headers)).status_code == 200
    for viewer in (other, worker):
        resp = await workers_client.get(url, headers=viewer.headers)
        assert resp.status_code == 404 and resp.json()["code"] == "qualification_type_not_found"
    missing = await workers_client.get("/v1/qualification-types/NOPE", headers=owner.headers)
    assert missing.status_code == 404


async def _search(client: httpx.AsyncClient, actor, **params) -> list[dict]:
    resp = await client.get("/v1/qualification-types", params=params, headers=actor.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def test_search_by_name_or_keyword_lists_active_types(
    workers_client: httpx.AsyncClient,
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    tag = new_id().lower()
    by_name = await create_type(workers_client, owner, name=f"Zebra-{tag} striping")
    by_keyword = await create_type(workers_client, owner, name="Plain", keywords=[f"k{tag}"])
    hidden = await create_type(workers_client, owner, name=f"Zebra-{tag} hidden", status="inactive")
    found = await _search(workers_client, worker, query=f"zebra-{tag}")
    assert [t["id"] for t in found] == [by_name["id"]]
    assert all("answer_key" not in t for t in found)
    found = await _search(workers_client, worker, query=f"K{tag}")
    assert [t["id"] for t in found] == [by_keyword["id"]]
    # LIKE wildcards in the query are literal characters
    assert await _search(workers_client, worker, query=f"zebra_{tag}") == []
    assert await _search(workers_client, worker, query=f"%{tag}") == []
    percent = await create_type(workers_client, owner, name=f"Top 5% {tag}")
    assert [t["id"] for t in await _search(workers_client, worker, query=f"5% {tag}")] == [
        percent["id"]
    ]
    mine = await _search(workers_client, owner, mine="true")
    assert {t["id"] for t in mine} == {by_name["id"], by_keyword["id"], hidden["id"], percent["id"]}
    assert [t["id"] for t in mine] == sorted((t["id"] for t in mine), reverse=True)
    as_worker = await workers_client.get(
        "/v1/qualification-types", params={"mine": "true"}, headers=worker.headers
    )
    assert as_worker.status_code == 403


async def test_search_lists_the_system_types_and_paginates(
    workers_client: httpx.AsyncClient,
) -> None:
    worker = await create_worker(workers_client)
    system = await _search(workers_client, worker, query="system.")
    by_id = {t["id"]: t for t in system}
    assert by_id[APPROVAL_RATE_TYPE_ID]["name"] == "system.approval_rate"
    assert by_id[APPROVED_COUNT_TYPE_ID]["name"] == "system.approved_count"
    assert by_id[COUNTRY_TYPE_ID]["name"] == "system.country"
    assert all(t["is_system"] and t["owner_id"] is None for t in by_id.values())

    owner = await create_requester(workers_client)
    tag = new_id().lower()
    made = [
        (await create_type(workers_client, owner, name=f"page-{tag}-{i}"))["id"] for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"query": f"page-{tag}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await workers_client.get(
            "/v1/qualification-types", params=params, headers=worker.headers
        )
        page = resp.json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)


async def test_owner_updates_a_type(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    url = f"/v1/qualification-types/{qtype['id']}"
    resp = await workers_client.patch(
        url,
        json={
            "description": "new words",
            "status": "inactive",
            "retry_delay_seconds": 60,
            "answer_key": {**SAMPLE_KEY, "mapping": "sum"},
            "keywords": ["New"],
        },
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["description"] == "new words" and body["status"] == "inactive"
    assert body["retry_delay_seconds"] == 60 and body["answer_key"]["mapping"] == "sum"
    assert body["keywords"] == ["new"] and body["name"] == qtype["name"]
    assert body["updated_at"] >= qtype["updated_at"]
    # null removes the test and key together; the retry delay back to "one attempt only"
    resp = await workers_client.patch(
        url,
        json={"test": None, "answer_key": None, "retry_delay_seconds": None},
        headers=owner.headers,
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["has_test"] is False and body["test"] is None and body["answer_key"] is None
    assert body["retry_delay_seconds"] is None
    reactivated = await workers_client.patch(url, json={"status": "active"}, headers=owner.headers)
    assert reactivated.json()["status"] == "active"


@pytest.mark.parametrize(
    "body",
    [
        {"test": None},  # the answer key would be left without a test
        {"test": _without("q2")},  # the key scores a question that would be gone
        {"auto_grant": True},  # an auto_grant type has no test
        {"status": None},
        {"description": None},
        {"name": "renamed"},
        {"answer_key": {"answers": {"q9": {"correct": 1}}}},
    ],
)
async def test_invalid_update_is_422_and_changes_nothing(
    workers_client: httpx.AsyncClient, db, body: dict
) -> None:
    owner = await create_requester(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    before = dict(await db.fetchrow("SELECT * FROM qualification_types WHERE id = $1", qtype["id"]))
    resp = await workers_client.patch(
        f"/v1/qualification-types/{qtype['id']}", json=body, headers=owner.headers
    )
    assert resp.status_code == 422, resp.text
    after = dict(await db.fetchrow("SELECT * FROM qualification_types WHERE id = $1", qtype["id"]))
    assert after == before


async def test_update_by_others_is_404_and_system_types_are_403(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    url = f"/v1/qualification-types/{qtype['id']}"
    foreign = await workers_client.patch(
        url, json={"description": "mine now"}, headers=other.headers
    )
    assert foreign.status_code == 404 and foreign.json()["code"] == "qualification_type_not_found"
    as_worker = await workers_client.patch(url, json={"description": "x"}, headers=worker.headers)
    assert as_worker.status_code == 403
    assert (
        await db.fetchval("SELECT description FROM qualification_types WHERE id = $1", qtype["id"])
        == "a test type"
    )
    system = await workers_client.patch(
        f"/v1/qualification-types/{APPROVAL_RATE_TYPE_ID}",
        json={"status": "inactive"},
        headers=other.headers,
    )
    assert system.status_code == 403 and system.json()["code"] == "system_qualification_type"


async def test_search_and_read_need_no_api_key(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    tag = new_id().lower()
    qtype = await create_type(
        workers_client, owner, name=f"open-{tag}", test=SAMPLE_TEST, answer_key=SAMPLE_KEY
    )
    hidden = await create_type(workers_client, owner, name=f"open-{tag}-off", status="inactive")
    listing = await workers_client.get("/v1/qualification-types", params={"query": f"open-{tag}"})
    assert listing.status_code == 200
    assert [t["id"] for t in listing.json()["items"]] == [qtype["id"]]
    one = await workers_client.get(f"/v1/qualification-types/{qtype['id']}")
    assert one.status_code == 200 and "answer_key" not in one.json()
    assert one.json()["test"]["duration_seconds"] == SAMPLE_TEST["duration_seconds"]
    assert (await workers_client.get(f"/v1/qualification-types/{hidden['id']}")).status_code == 404
    # a key that is sent must be valid; mine=true needs one
    bad_key = {"Authorization": "Bearer mk_notarealkeynotarealkeynotarealkey00"}
    bad = await workers_client.get(f"/v1/qualification-types/{qtype['id']}", headers=bad_key)
    assert bad.status_code == 401
    anonymous_mine = await workers_client.get("/v1/qualification-types", params={"mine": "true"})
    assert anonymous_mine.status_code == 401
