"""system.level in shared/eligibility.py: every comparator and guard on the level, the
requirement's validation, and the facts reading `worker_levels` (0 without a row)."""

from __future__ import annotations

import httpx
import pytest

from shared.eligibility import (
    LEVEL_TYPE_ID,
    ProjectRules,
    QualificationRequirement,
    WorkerFacts,
    WorkerStatsCounts,
    evaluate_eligibility,
    evaluate_with_facts,
    fetch_worker_facts,
)
from tests.fixtures.accounts import create_requester, create_worker


def _level_requirement(comparator: str, *values: object, guard: str = "accept") -> dict:
    return {
        "qualification_type_id": LEVEL_TYPE_ID,
        "comparator": comparator,
        "values": list(values),
        "guard": guard,
    }


def _facts(level: int) -> WorkerFacts:
    return WorkerFacts(
        country=None,
        stats=WorkerStatsCounts(0, 0, 0),
        grants={},
        blocked_by=frozenset(),
        level=level,
    )


@pytest.mark.parametrize(
    ("requirement", "admitted_levels"),
    [
        (_level_requirement("gte", 1), {1, 2, 3}),
        (_level_requirement("lt", 2), {0, 1}),
        (_level_requirement("eq", 3), {3}),
        (_level_requirement("in", 0, 2), {0, 2}),
        (_level_requirement("not_in", 0), {1, 2, 3}),
        (_level_requirement("exists"), {0, 1, 2, 3}),  # every worker has a level, 0 at least
        (_level_requirement("not_exists"), set()),
    ],
)
def test_every_comparator_reads_the_level(requirement: dict, admitted_levels: set[int]) -> None:
    rules = ProjectRules(project_id="P", requester_id="R", requirements=[requirement])
    admitted = {lv for lv in range(4) if evaluate_with_facts(_facts(lv), rules).accept.ok}
    assert admitted == admitted_levels


def test_a_discover_guard_on_the_level_also_guards_accept() -> None:
    rules = ProjectRules(
        project_id="P",
        requester_id="R",
        requirements=[_level_requirement("gte", 2, guard="discover")],
    )
    verdict = evaluate_with_facts(_facts(1), rules)
    assert not verdict.discover.ok and not verdict.preview.ok and not verdict.accept.ok
    assert verdict.accept.failures[0].actual == 1
    assert evaluate_with_facts(_facts(2), rules).discover.ok


@pytest.mark.parametrize(
    ("requirement", "error"),
    [
        (_level_requirement("gte", 4), "levels 0 to 3"),
        (_level_requirement("gte", -1), "levels 0 to 3"),
        (_level_requirement("in", 1, 7), "levels 0 to 3"),
        (_level_requirement("gte", "2"), "integers"),
        (_level_requirement("between", 1), "comparator"),
        (_level_requirement("gte"), "exactly one value"),
        (_level_requirement("exists", 1), "takes no values"),
        (_level_requirement("gte", 1, guard="always"), "guard"),
    ],
)
def test_bad_level_requirements_are_refused(requirement: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        QualificationRequirement.model_validate(requirement)


async def test_the_facts_read_the_decided_level_and_0_without_a_row(
    workers_client: httpx.AsyncClient, db
) -> None:
    requester = await create_requester(workers_client)
    newcomer, expert = await create_worker(workers_client), await create_worker(workers_client)
    await db.execute(
        "INSERT INTO worker_levels (worker_id, level, since) VALUES ($1, 3, now())", expert.id
    )
    rules = [ProjectRules("P", requester.id, [_level_requirement("gte", 2)])]
    async with db.acquire() as conn:
        for worker, level, ok in ((newcomer, 0, False), (expert, 3, True)):
            facts = await fetch_worker_facts(
                conn, worker_id=worker.id, requester_ids=[], qualification_type_ids=[]
            )
            assert facts.level == level and facts.value_of(LEVEL_TYPE_ID) == level
            verdict = await evaluate_eligibility(conn, worker_id=worker.id, projects=rules)
            assert verdict["P"].accept.ok is ok
