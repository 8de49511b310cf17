"""Accept in one round trip (lifecycle/accept.py, ACCEPT_FUSED_SQL) when SQL can decide the
project's rules, and today's path, unchanged, when it cannot.

Which path ran is seen through a spy on `accept.claim_slot` (the separate claim statement:
the fused path's happy case never calls it) and, for the statement count, a connection wrapper
that records what accept sends; the database itself is the real one throughout.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from services.tasks.assignments.schemas import AcceptedAssignment
from services.tasks.lifecycle import accept as accepting
from shared.eligibility import APPROVED_COUNT_TYPE_ID
from shared.ids import new_id
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import (
    StatementRecorder,
    accept,
    cat_tasks,
    open_slots,
    published_project,
    start_claims_at,
    workers,
)
from tests.fixtures.workers import create_type, grant

ClaimPasses = list[tuple[int, bool]]


@pytest.fixture
def claim_passes(monkeypatch: pytest.MonkeyPatch) -> ClaimPasses:
    """(from_rank, skip_locked) of each separate claim statement accept runs, in order.

    Accept's first rank is fixed at 0 (a test may fix another), so that a first pass finds a
    free task whenever one exists: with a random start, a project of a few tasks usually has
    none above it, and the wrap-around pass would run as a statement of its own."""
    start_claims_at(monkeypatch, 0)
    passes: ClaimPasses = []
    claim_slot = accepting.claim_slot

    async def recording_claim_slot(conn: asyncpg.Connection, **kwargs: Any) -> Any:
        passes.append((kwargs["from_rank"], kwargs["skip_locked"]))
        return await claim_slot(conn, **kwargs)

    monkeypatch.setattr(accepting, "claim_slot", recording_claim_slot)
    return passes


async def assignments_of(db: asyncpg.Pool, project_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, task_id, worker_id FROM assignments WHERE project_id = $1", project_id
    )


async def test_a_rule_less_accept_is_one_statement(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client,
    payments_client,
    db,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_claims_at(monkeypatch, 0)  # a first pass that finds a task (see claim_passes)
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), assignments_per_task=2
    )
    worker = await create_worker(workers_client)
    async with apps["tasks"].state.database.autocommit(hot=True) as conn:
        recorder = StatementRecorder(conn)
        work = await accepting.accept(recorder, worker_id=worker.id, project_id=project.id)
    assert recorder.statements == [accepting.ACCEPT_FUSED_SQL]
    # The assignment was made on the project's terms, read in that same statement.
    row = await db.fetchrow(
        "SELECT a.*, p.reward_cents AS project_reward, p.fee_cents AS project_fee "
        "FROM assignments a JOIN projects p ON p.id = a.project_id WHERE a.id = $1",
        work.assignment_id,
    )
    assert (row["worker_id"], row["task_id"], row["project_id"], row["status"]) == (
        worker.id,
        work.task_id,
        project.id,
        "accepted",
    )
    assert row["requester_id"] == project.requester.id
    assert (row["reward_cents"], row["fee_cents"]) == (row["project_reward"], row["project_fee"])
    assert (row["deadline"] - row["accepted_at"]).total_seconds() == 600
    assert (work.accepted_at, work.deadline) == (row["accepted_at"], row["deadline"])
    assert work.reward == row["reward_cents"] and work.task_id in project.task_ids
    assert await open_slots(db, project.id) == 3 * 2 - 1


async def test_a_rule_less_accept_answers_as_before_without_a_separate_claim(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    worker = await create_worker(workers_client)
    resp = await accept(tasks_client, worker, project.id)
    assert resp.status_code == 201, resp.text
    work = resp.json()
    assert set(work) == set(AcceptedAssignment.model_fields)
    assert work["project_id"] == project.id and work["reward"] == "0.10"
    task_input = await db.fetchval("SELECT input FROM tasks WHERE id = $1", work["task_id"])
    assert work["input"] == json.loads(task_input)
    assert claim_passes == []
    assert [(r["id"], r["worker_id"]) for r in await assignments_of(db, project.id)] == [
        (work["assignment_id"], worker.id)
    ]


async def test_a_blocked_worker_is_refused_and_nothing_is_claimed(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    blocked, other = await workers(workers_client, 2)
    block = await workers_client.post(
        "/v1/blocks",
        json={"worker_id": blocked.id, "reason": "copied answers"},
        headers=project.requester.headers,
    )
    assert block.status_code in (200, 201), block.text
    resp = await accept(tasks_client, blocked, project.id)
    assert resp.status_code == 403 and resp.json()["code"] == "blocked", resp.text
    assert await open_slots(db, project.id) == 3
    assert await assignments_of(db, project.id) == []
    assert claim_passes == []
    # Someone else's block does not stop this worker, who still takes the one-statement path.
    assert (await accept(tasks_client, other, project.id)).status_code == 201
    assert claim_passes == []
    # Lifting the block opens the fused path for the worker again.
    unblock = await workers_client.delete(
        f"/v1/blocks/{blocked.id}", headers=project.requester.headers
    )
    assert unblock.status_code in (200, 204), unblock.text
    assert (await accept(tasks_client, blocked, project.id)).status_code == 201
    assert claim_passes == []


async def test_requirements_are_evaluated_as_before(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    requester = await create_requester(workers_client)
    skill = await create_type(workers_client, requester, status="active")
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(3),
        requester=requester,
        qualification_requirements=[
            {"qualification_type_id": skill["id"], "comparator": "gte", "values": [50]},
            # A discover guard also guards accept; the worker's stats are read for it.
            {
                "qualification_type_id": APPROVED_COUNT_TYPE_ID,
                "comparator": "gte",
                "values": [0],
                "guard": "discover",
            },
        ],
    )
    novice, ungraded, expert = await workers(workers_client, 3)
    for worker, value in ((novice, 40), (expert, 80)):
        granted = await grant(workers_client, requester, skill["id"], worker.id, value)
        assert granted.status_code in (200, 201), granted.text

    for worker, actual in ((novice, 40), (ungraded, None)):
        resp = await accept(tasks_client, worker, project.id)
        assert resp.status_code == 403, resp.text
        problem = resp.json()
        assert problem["code"] == "not_qualified"
        assert [
            (u["qualification_type_id"], u["comparator"], u["values"], u["actual"])
            for u in problem["unmet_requirements"]
        ] == [(skill["id"], "gte", [50], actual)]
    assert await open_slots(db, project.id) == 3 and claim_passes == []

    resp = await accept(tasks_client, expert, project.id)
    assert resp.status_code == 201, resp.text
    # SQL does not decide requirements: the claim ran as its own statement after the check.
    assert claim_passes and claim_passes[0][1] is True
    assert await open_slots(db, project.id) == 2


async def test_a_requirement_on_the_workers_stats_still_refuses(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(2),
        qualification_requirements=[
            {
                "qualification_type_id": APPROVED_COUNT_TYPE_ID,
                "comparator": "gte",
                "values": [1],
                "guard": "preview",
            }
        ],
    )
    newcomer = await create_worker(workers_client)
    resp = await accept(tasks_client, newcomer, project.id)
    assert resp.status_code == 403 and resp.json()["code"] == "not_qualified", resp.text
    assert [u["actual"] for u in resp.json()["unmet_requirements"]] == [0]
    assert await open_slots(db, project.id) == 2 and claim_passes == []


async def test_min_gold_accuracy_is_still_enforced(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3), min_gold_accuracy=60
    )
    careless, careful, newcomer = await workers(workers_client, 3)
    await db.executemany(
        "INSERT INTO gold_stats (project_id, worker_id, answered, correct, submitted) "
        "VALUES ($1, $2, $3, $4, $3)",
        [(project.id, careless.id, 3, 0), (project.id, careful.id, 3, 3)],
    )
    resp = await accept(tasks_client, careless, project.id)
    assert resp.status_code == 403, resp.text
    problem = resp.json()
    assert problem["code"] == "gold_accuracy_too_low"
    assert (problem["min_gold_accuracy"], problem["gold_answered"], problem["gold_correct"]) == (
        60,
        3,
        0,
    )
    assert await open_slots(db, project.id) == 3 and claim_passes == []
    for worker in (careful, newcomer):
        assert (await accept(tasks_client, worker, project.id)).status_code == 201
    # Decided in Python: each claim was a statement of its own.
    assert len(claim_passes) >= 2
    assert await open_slots(db, project.id) == 1


async def test_projects_that_are_not_published_give_no_work_and_claim_nothing(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db, claim_passes
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    headers = project.requester.headers
    worker = await create_worker(workers_client)

    async def refused() -> None:
        resp = await accept(tasks_client, worker, project.id)
        assert resp.status_code == 404 and resp.json()["code"] == "no_work_available", resp.text
        assert await open_slots(db, project.id) == 2
        assert await assignments_of(db, project.id) == []
        assert claim_passes == []

    pause = await tasks_client.post(f"/v1/projects/{project.id}/pause", headers=headers)
    assert pause.status_code == 200, pause.text
    await refused()
    resume = await tasks_client.post(f"/v1/projects/{project.id}/resume", headers=headers)
    assert resume.status_code == 200, resume.text
    # Published again: the one-statement path.
    taken = await accept(tasks_client, worker, project.id)
    assert taken.status_code == 201 and claim_passes == []
    close = await tasks_client.post(f"/v1/projects/{project.id}/close", headers=headers)
    assert close.status_code == 200, close.text
    other = await create_worker(workers_client)
    resp = await accept(tasks_client, other, project.id)
    assert resp.status_code == 404 and resp.json()["code"] == "no_work_available", resp.text
    assert [r["worker_id"] for r in await assignments_of(db, project.id)] == [worker.id]
    assert claim_passes == []


async def test_20_workers_race_for_7_slots(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(7)
    )
    crowd = await workers(workers_client, 20)
    responses = await asyncio.gather(*(accept(tasks_client, w, project.id) for w in crowd))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 7, 404: 13}, (codes, [r.text for r in responses if r.status_code >= 500])
    assert all(r.json()["code"] == "no_work_available" for r in responses if r.status_code == 404)
    won = [r.json() for r in responses if r.status_code == 201]
    assert sorted(w["task_id"] for w in won) == sorted(project.task_ids)
    rows = await assignments_of(db, project.id)
    assert sorted(r["task_id"] for r in rows) == sorted(project.task_ids)
    assert len({r["worker_id"] for r in rows}) == 7
    slots = await db.fetch("SELECT open_slots FROM tasks WHERE project_id = $1", project.id)
    assert [s["open_slots"] for s in slots] == [0] * 7


async def test_one_workers_parallel_accepts_from_one_rank_get_each_task_once(
    tasks_client: httpx.AsyncClient,
    workers_client,
    payments_client,
    db,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker app firing accepts in parallel, every fused pass starting at the same first
    task: they contend for the same rows (SKIP LOCKED moves each past the ones the others
    hold), and may meet each other's fresh assignments; the worker still gets each task once and
    "no work" only once all are taken."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(10), assignments_per_task=3
    )
    start_claims_at(monkeypatch, 0)
    worker = await create_worker(workers_client)
    responses = await asyncio.gather(*(accept(tasks_client, worker, project.id) for _ in range(16)))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 10, 404: 6}, (codes, [r.text for r in responses if r.status_code >= 500])
    taken = [r.json()["task_id"] for r in responses if r.status_code == 201]
    assert sorted(taken) == sorted(project.task_ids)
    per_task = await db.fetch(
        "SELECT task_id, count(*) AS n FROM assignments WHERE project_id = $1 AND worker_id = $2"
        " GROUP BY task_id",
        project.id,
        worker.id,
    )
    assert len(per_task) == 10 and {r["n"] for r in per_task} == {1}
    assert await open_slots(db, project.id) == 10 * 3 - 10


async def test_a_fused_claim_that_meets_its_own_workers_assignment_claims_another_task(
    tasks_client: httpx.AsyncClient,
    workers_client,
    payments_client,
    db,
    claim_passes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's other accept inserts its assignment of the first task and commits while the
    fused statement, whose snapshot cannot show it, has picked that task: the fused insert does
    nothing (nothing decremented), and accept runs that pass again on its own and gets the
    other task. The other accept is played by SQL; its row is written with triggers off
    (session_replication_role, superuser) so that its foreign-key check does not key-share lock
    the task row, which would make the SKIP LOCKED pass skip the task instead of picking it."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2), assignments_per_task=2
    )
    first_task, other_task = project.task_ids
    await db.execute(
        "UPDATE tasks SET claim_rank = CASE WHEN id = $1 THEN 0 ELSE 1 END WHERE project_id = $2",
        first_task,
        project.id,
    )
    start_claims_at(monkeypatch, 0)
    worker = await create_worker(workers_client)
    async with db.acquire() as inflight:
        other_accept = inflight.transaction()
        await other_accept.start()
        await inflight.execute("SET LOCAL session_replication_role = replica")
        await inflight.execute(
            """
            INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                                     reward_cents, fee_cents, deadline)
            VALUES ($1, $2, $3, $4, $5, 10, 2, now() + interval '10 minutes')
            """,
            new_id(),
            first_task,
            project.id,
            project.requester.id,
            worker.id,
        )
        pending = asyncio.create_task(accept(tasks_client, worker, project.id))
        await asyncio.sleep(0.3)  # the fused insert waits to learn whether that row commits
        assert not pending.done()
        await other_accept.commit()
    resp = await pending
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_id"] == other_task
    # The fused first pass collided; the same pass ran once more as a separate claim.
    assert claim_passes == [(0, True)]
    slots = dict(
        await db.fetch("SELECT id, open_slots FROM tasks WHERE project_id = $1", project.id)
    )
    assert slots == {first_task: 2, other_task: 1}
    assert sorted(r["task_id"] for r in await assignments_of(db, project.id)) == sorted(
        [first_task, other_task]
    )


async def test_a_fused_pass_that_starts_past_every_task_wraps_around(
    tasks_client: httpx.AsyncClient,
    workers_client,
    payments_client,
    db,
    claim_passes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(3)
    )
    start_claims_at(monkeypatch, accepting.MAX_CLAIM_RANK)
    resp = await accept(tasks_client, await create_worker(workers_client), project.id)
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_id"] in project.task_ids
    # The first pass (from the top rank) was the fused one; only the wrap-around ran alone.
    assert claim_passes == [(0, True)]
    assert await open_slots(db, project.id) == 2


async def _explain(conn: asyncpg.Connection, sql: str, *args: Any) -> str:
    """EXPLAIN ANALYZE in a transaction that is rolled back: the plan as run, nothing kept."""
    claim = conn.transaction()
    await claim.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, *args)
    finally:
        await claim.rollback()
    return "\n".join(r[0] for r in rows)


async def test_the_fused_plan_probes_the_queue_index_and_skips_the_facts(
    workers_client: httpx.AsyncClient, db
) -> None:
    """100,000 open tasks and a worker with 3,000 assignments in the project and 3,000
    elsewhere: the fused statement must scan ix_tasks_claim from the random rank, probe the
    worker's (task, worker) key once per candidate (no anti-join over the worker's
    assignments), and, for a project without requirements, never run the worker's stats and
    grants; with requirements, never run the claim. Custom and generic plans alike."""
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    rule_less, with_requirement, elsewhere = new_id(), new_id(), new_id()
    projects = [
        (rule_less, "[]"),
        (
            with_requirement,
            f'[{{"qualification_type_id": "{APPROVED_COUNT_TYPE_ID}", "comparator": "gte", '
            '"values": [0], "guard": "accept"}]',
        ),
        (elsewhere, "[]"),
    ]
    try:
        async with db.acquire() as conn:
            for project_id, requirements in projects:
                await conn.execute(
                    """
                    INSERT INTO projects (id, requester_id, status, title, task_type, labels,
                        reward_cents, fee_cents, assignments_per_task,
                        assignment_duration_seconds, lifetime_seconds, auto_approve_seconds,
                        qualification_requirements, published_at, tasks_expire_at)
                    VALUES ($1, $2, 'published', 'plan probe', 'classification', '["a", "b"]',
                        5, 1, 3, 60, 86400, 3600, $3::jsonb, now(), now() + interval '1 day')
                    """,
                    project_id,
                    requester.id,
                    requirements,
                )
            for project_id, tasks in (
                (rule_less, 100_000),
                (with_requirement, 100),
                (elsewhere, 3_000),
            ):
                await conn.execute(
                    """
                    INSERT INTO tasks (id, project_id, requester_id, input, max_assignments,
                                       open_slots)
                    SELECT $1 || '-' || g, $1, $2, '{}', 3, 3 FROM generate_series(1, $3) g
                    """,
                    project_id,
                    requester.id,
                    tasks,
                )
            await conn.execute(
                """
                INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                                         status, reward_cents, fee_cents, accepted_at, deadline)
                SELECT 'A' || t.id, t.id, t.project_id, t.requester_id, $3, 'accepted', 5, 1,
                       now(), now() + interval '1 hour'
                FROM tasks t
                WHERE (t.project_id = $1 AND t.claim_rank % 33 = 0) OR t.project_id = $2
                """,
                rule_less,
                elsewhere,
                worker.id,
            )
            await conn.execute("ANALYZE projects; ANALYZE tasks; ANALYZE assignments")
            rank = 1 << 30
            plans = {
                "custom": await _explain(
                    conn, accepting.ACCEPT_FUSED_SQL, rule_less, worker.id, rank, new_id()
                ),
                "requirements": await _explain(
                    conn, accepting.ACCEPT_FUSED_SQL, with_requirement, worker.id, 0, new_id()
                ),
            }
            generic = conn.transaction()
            await generic.start()
            try:
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                await conn.execute(
                    "PREPARE fused_accept_probe (text, text, integer, text) AS "
                    + accepting.ACCEPT_FUSED_SQL
                )
                rows = await conn.fetch(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
                    f"EXECUTE fused_accept_probe('{rule_less}', '{worker.id}', {rank}, "
                    f"'{new_id()}')"
                )
                plans["generic"] = "\n".join(r[0] for r in rows)
            finally:
                await generic.rollback()
                await conn.execute("DEALLOCATE fused_accept_probe")
        for kind in ("custom", "generic"):
            plan = plans[kind]
            assert "Index Scan using ix_tasks_claim on tasks t" in plan, (kind, plan)
            assert "claim_rank >= " in plan, (kind, plan)
            assert "Index Only Scan using uq_assignments_task_id_worker_id" in plan, (kind, plan)
            assert "Seq Scan on tasks" not in plan and "Seq Scan on assignments" not in plan, (
                kind,
                plan,
            )
            assert "Anti Join" not in plan, (kind, plan)
            assert "Tuples Inserted: 1" in plan, (kind, plan)
            facts = [line for line in plan.splitlines() if "worker_stats" in line]
            assert facts and all("never executed" in line for line in facts), (kind, plan)
            # No minimum gold accuracy: the worker's tally is not read either.
            tally = [line for line in plan.splitlines() if " on gold_stats" in line]
            assert tally and all("never executed" in line for line in tally), (kind, plan)
        plan = plans["requirements"]
        facts = [line for line in plan.splitlines() if "worker_stats_deltas" in line]
        assert facts and not any("never executed" in line for line in facts), plan
        scans = [line for line in plan.splitlines() if "ix_tasks_claim" in line]
        assert scans and all("never executed" in line for line in scans), plan
        assert "Tuples Inserted: 0" in plan, plan
    finally:
        await db.execute(
            "UPDATE projects SET status = 'closed' WHERE id = ANY($1::text[])",
            [p for p, _ in projects],
        )
