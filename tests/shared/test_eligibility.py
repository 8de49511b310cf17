"""shared/eligibility.py: comparators, guards, blocks, system types, one round trip."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from shared.eligibility import (
    APPROVAL_RATE_TYPE_ID,
    APPROVED_COUNT_TYPE_ID,
    COUNTRY_TYPE_ID,
    ProjectRules,
    QualificationRequirement,
    WorkerFacts,
    WorkerStatsCounts,
    approval_rate_value,
    check_requirement,
    evaluate_eligibility,
    evaluate_with_facts,
)
from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import create_type, grant, insert_assignments


def req(type_id: str, comparator: str, *values: Any, guard: str = "accept") -> dict[str, Any]:
    return {
        "qualification_type_id": type_id,
        "comparator": comparator,
        "values": list(values),
        "guard": guard,
    }


# --------------------------------------------------------------------------- comparators


@pytest.mark.parametrize(
    ("comparator", "values", "actual", "holds"),
    [
        ("lt", [50], 49, True),
        ("lt", [50], 50, False),
        ("lte", [50], 50, True),
        ("lte", [50], 51, False),
        ("gt", [50], 51, True),
        ("gt", [50], 50, False),
        ("gte", [50], 50, True),
        ("gte", [50], 49, False),
        ("eq", [7], 7, True),
        ("eq", [7], 8, False),
        ("ne", [7], 8, True),
        ("ne", [7], 7, False),
        ("in", [1, 3, 5], 3, True),
        ("in", [1, 3, 5], 4, False),
        ("not_in", [1, 3, 5], 4, True),
        ("not_in", [1, 3, 5], 5, False),
        ("exists", [], 0, True),
        ("exists", [], None, False),
        ("not_exists", [], None, True),
        ("not_exists", [], 0, False),
        # a missing qualification fails every comparator but not_exists (MTurk's rule)
        ("lt", [50], None, False),
        ("ne", [7], None, False),
        ("not_in", [1], None, False),
        # countries: ISO codes, case-insensitive
        ("eq", ["US"], "US", True),
        ("eq", ["us"], "US", True),
        ("ne", ["US"], "CA", True),
        ("in", ["US", "CA"], "CA", True),
        ("not_in", ["US", "CA"], "MX", True),
        ("not_in", ["US", "CA"], "US", False),
        ("gt", [1], "US", False),  # ordering a country fails closed
        ("eq", [1], "US", False),
        ("eq", ["1"], 1, False),  # no coercion between text and numbers
        ("eq", [True], 1, False),
        ("lt", [], 1, False),  # malformed requirements fail closed
        ("in", [], 1, False),
        ("between", [1, 2], 1, False),
    ],
)
def test_comparators(comparator: str, values: list, actual: Any, holds: bool) -> None:
    reason = check_requirement({"comparator": comparator, "values": values}, actual)
    assert (reason is None) is holds, reason
    if not holds:
        assert isinstance(reason, str) and reason


@pytest.mark.parametrize(
    ("approved", "rejected", "value"),
    [(0, 0, 100), (0, 9, 100), (9, 0, 100), (1, 9, 10), (9, 1, 90), (2, 9, 18), (199, 1, 99)],
)
def test_approval_rate_is_100_until_ten_decisions_then_rounded_down(
    approved: int, rejected: int, value: int
) -> None:
    assert approval_rate_value(approved, rejected) == value


# --------------------------------------------------------------------------- guards and blocks


def _facts(grants: dict[str, int], blocked_by: frozenset[str] = frozenset()) -> WorkerFacts:
    return WorkerFacts(
        country="FR",
        stats=WorkerStatsCounts(submitted=0, approved=0, rejected=0),
        grants=grants,
        blocked_by=blocked_by,
    )


def test_guards_nest_discover_then_preview_then_accept() -> None:
    rules = ProjectRules(
        "P",
        "R",
        [
            req("D", "exists", guard="discover"),
            req("V", "exists", guard="preview"),
            req("A", "exists", guard="accept"),
            req("OK", "gte", 1, guard="discover"),
        ],
    )
    result = evaluate_with_facts(_facts({"OK": 5}), rules)
    assert not result.blocked
    assert [f.qualification_type_id for f in result.discover.failures] == ["D"]
    assert [f.qualification_type_id for f in result.preview.failures] == ["D", "V"]
    assert [f.qualification_type_id for f in result.accept.failures] == ["D", "V", "A"]
    assert not (result.discover.ok or result.preview.ok or result.accept.ok)

    only_accept = evaluate_with_facts(_facts({"D": 1, "V": 1, "OK": 1}), rules)
    assert only_accept.discover.ok and only_accept.preview.ok and not only_accept.accept.ok
    unmet = only_accept.accept.failures[0]
    assert (unmet.qualification_type_id, unmet.comparator, unmet.actual) == ("A", "exists", None)
    assert unmet.to_dict()["reason"] == "the worker does not have this qualification"

    everything = evaluate_with_facts(_facts({"D": 1, "V": 1, "A": 1, "OK": 1}), rules)
    assert everything.discover.ok and everything.preview.ok and everything.accept.ok


def test_default_guard_is_accept_and_unknown_guards_fail_closed() -> None:
    no_guard = {"qualification_type_id": "A", "comparator": "exists", "values": []}
    result = evaluate_with_facts(_facts({}), ProjectRules("P", "R", [no_guard]))
    assert result.discover.ok and result.preview.ok and not result.accept.ok
    odd = evaluate_with_facts(_facts({}), ProjectRules("P", "R", [req("A", "exists", guard="x")]))
    assert not odd.discover.ok


def test_a_block_fails_every_guard_even_without_requirements() -> None:
    facts = _facts({}, blocked_by=frozenset({"R"}))
    blocked = evaluate_with_facts(facts, ProjectRules("P", "R", []))
    assert blocked.blocked and not (blocked.discover.ok or blocked.preview.ok or blocked.accept.ok)
    other = evaluate_with_facts(facts, ProjectRules("P2", "R2", []))
    assert not other.blocked and other.accept.ok


# --------------------------------------------------------------------------- requirement model


@pytest.mark.parametrize(
    "body",
    [
        req("T", "gte", 1, 2),
        req("T", "gte"),
        req("T", "exists", 1),
        req("T", "in"),
        req("T", "gte", "5"),
        req("T", "gte", True),
        req("T", "gte", 1.5),
        req(COUNTRY_TYPE_ID, "gt", "US"),
        req(COUNTRY_TYPE_ID, "eq", 1),
        req(COUNTRY_TYPE_ID, "in", "US", "XX"),
        req("T", "exists", guard="always"),
        req("T", "like", 1),
        {**req("T", "exists"), "extra": 1},
        req("bad id!", "exists"),
    ],
)
def test_invalid_requirements_are_refused(body: dict) -> None:
    with pytest.raises(ValidationError):
        QualificationRequirement.model_validate(body)


def test_requirement_defaults_and_normalises() -> None:
    parsed = QualificationRequirement.model_validate(
        {"qualification_type_id": COUNTRY_TYPE_ID, "comparator": "in", "values": ["us", " ca"]}
    )
    assert parsed.guard == "accept" and parsed.values == ["US", "CA"]
    parsed = QualificationRequirement.model_validate(req(APPROVAL_RATE_TYPE_ID, "gte", 95))
    assert parsed.model_dump()["values"] == [95]


# --------------------------------------------------------------------------- against the database


class QueryCounter:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(record.query)


async def test_evaluates_real_grants_stats_country_and_blocks(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    blocker = await create_requester(workers_client)
    worker = await create_worker(workers_client, country="BR")
    english = await create_type(workers_client, owner)
    revoked = await create_type(workers_client, owner)
    never = await create_type(workers_client, owner)
    await grant(workers_client, owner, english["id"], worker.id, 80)
    await grant(workers_client, owner, revoked["id"], worker.id, 5)
    await workers_client.request(
        "DELETE",
        f"/v1/qualification-types/{revoked['id']}/workers/{worker.id}",
        json={"reason": "gone"},
        headers=owner.headers,
    )
    await insert_assignments(
        db,
        requester_id=owner.id,
        worker_id=worker.id,
        statuses=["approved"] * 9 + ["rejected"] * 3,
    )
    resp = await workers_client.post(
        "/v1/blocks", json={"worker_id": worker.id, "reason": "spam"}, headers=blocker.headers
    )
    assert resp.status_code == 201

    projects = [
        ProjectRules(
            "fits",
            owner.id,
            [
                req(english["id"], "gte", 80),
                req(APPROVAL_RATE_TYPE_ID, "gte", 75, guard="discover"),
                req(APPROVED_COUNT_TYPE_ID, "gt", 8),
                req(COUNTRY_TYPE_ID, "in", "BR", "PT", guard="preview"),
                req(revoked["id"], "not_exists"),
                req(never["id"], "not_exists"),
            ],
        ),
        ProjectRules(
            "too_strict",
            owner.id,
            [
                req(english["id"], "gt", 80, guard="preview"),
                req(APPROVAL_RATE_TYPE_ID, "gte", 76, guard="discover"),
                req(COUNTRY_TYPE_ID, "ne", "BR"),
                req(revoked["id"], "exists"),
            ],
        ),
        ProjectRules("blocked", blocker.id, []),
    ]
    async with db.acquire() as conn:
        result = await evaluate_eligibility(conn, worker_id=worker.id, projects=projects)

    assert set(result) == {"fits", "too_strict", "blocked"}
    fits = result["fits"]
    assert fits.discover.ok and fits.preview.ok and fits.accept.ok and not fits.blocked

    strict = result["too_strict"]
    assert [f.qualification_type_id for f in strict.discover.failures] == [APPROVAL_RATE_TYPE_ID]
    assert strict.discover.failures[0].actual == 75  # 9 of 12 approved
    assert [f.qualification_type_id for f in strict.accept.failures] == [
        english["id"],
        APPROVAL_RATE_TYPE_ID,
        COUNTRY_TYPE_ID,
        revoked["id"],
    ]
    by_type = {f.qualification_type_id: f for f in strict.accept.failures}
    assert by_type[english["id"]].actual == 80 and by_type[COUNTRY_TYPE_ID].actual == "BR"
    assert by_type[revoked["id"]].actual is None

    blocked = result["blocked"]
    assert blocked.blocked and not (blocked.discover.ok or blocked.preview.ok or blocked.accept.ok)


async def test_one_round_trip_whatever_the_number_of_projects(
    workers_client: httpx.AsyncClient, db
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client, country="JP")
    types = [await create_type(workers_client, owner) for _ in range(10)]
    for i, qtype in enumerate(types[:5]):
        await grant(workers_client, owner, qtype["id"], worker.id, i)
    many = [
        ProjectRules(
            new_id(),
            owner.id if p % 2 else new_id(),
            [req(t["id"], "gte", 0, guard=("discover", "preview", "accept")[p % 3]) for t in types],
        )
        for p in range(200)
    ]
    one = [ProjectRules("single", owner.id, [req(types[0]["id"], "exists")])]
    counts, results = {}, {}
    async with db.acquire() as conn:
        for label, projects in (("none", []), ("one", one), ("many", many)):
            counter = QueryCounter()
            conn.add_query_logger(counter)
            try:
                results[label] = await evaluate_eligibility(
                    conn, worker_id=worker.id, projects=projects
                )
                await asyncio.sleep(0.05)  # asyncpg calls query loggers with call_soon
            finally:
                conn.remove_query_logger(counter)
            counts[label] = len(counter.queries)
            assert len(results[label]) == len(projects)
    assert counts == {"none": 0, "one": 1, "many": 1}
    assert results["one"]["single"].accept.ok
    failing = {f.qualification_type_id for f in results["many"][many[0].project_id].accept.failures}
    assert failing == {t["id"] for t in types[5:]}


async def test_unknown_worker_has_only_not_exists(db) -> None:
    rules = [
        ProjectRules(
            "p",
            "r",
            [req(COUNTRY_TYPE_ID, "not_exists"), req(APPROVAL_RATE_TYPE_ID, "eq", 100)],
        )
    ]
    async with db.acquire() as conn:
        result = await evaluate_eligibility(conn, worker_id="NOBODY", projects=rules)
    assert result["p"].accept.ok
