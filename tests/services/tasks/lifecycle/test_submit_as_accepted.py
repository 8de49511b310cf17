"""Submit in one statement when this process handed out the assignment (lifecycle/accepted.py,
submit.SUBMIT_IF_UNCHANGED_SQL), and every way that path must give way to the read path:
someone else's id, a format or gold answer changed since accept, an answer the kept format
refuses, a deadline passed, a concurrent submit."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx

from services.tasks.lifecycle import accept as accepting
from services.tasks.lifecycle import submit as submitting
from services.tasks.lifecycle.accepted import AcceptedAssignments, AcceptedContext
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import (
    StatementRecorder,
    accepted,
    cat_tasks,
    published_project,
    start_claims_at,
    submit,
)


async def _status(db: asyncpg.Pool, assignment_id: str) -> tuple[str, object]:
    row = await db.fetchrow("SELECT status, answer FROM assignments WHERE id = $1", assignment_id)
    return row["status"], None if row["answer"] is None else json.loads(row["answer"])


async def _tally(db: asyncpg.Pool, project_id: str, worker_id: str) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT submitted, answered, correct FROM gold_stats WHERE project_id = $1 "
        "AND worker_id = $2",
        project_id,
        worker_id,
    )
    return (0, 0, 0) if row is None else (row["submitted"], row["answered"], row["correct"])


def test_the_memo_is_bounded_and_only_the_holder_takes_an_entry() -> None:
    memo = AcceptedAssignments(max_entries=2)
    ctx = AcceptedContext("W1", "classification", ["cat", "dog"], False, None, None)
    for assignment_id in ("A1", "A2", "A3"):
        memo.remember(assignment_id, ctx)
    assert len(memo) == 2
    assert memo.take("A1", "W1") is None  # the oldest went first
    assert memo.take("A2", "W2") is None  # not W2's
    assert memo.take("A2", "W1") is ctx
    assert memo.take("A2", "W1") is None  # taken once
    assert len(memo) == 1


async def test_the_holders_submit_after_an_accept_here_is_one_statement(
    apps: dict, tasks_client, workers_client, payments_client, db, monkeypatch
) -> None:
    start_claims_at(monkeypatch, 0)
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1, gold_answer={"label": "cat"}),
    )
    worker = await create_worker(workers_client)
    memo = AcceptedAssignments()
    async with apps["tasks"].state.database.autocommit(hot=True) as conn:
        work = await accepting.accept(
            conn, worker_id=worker.id, project_id=project.id, accepted=memo
        )
        recorder = StatementRecorder(conn)
        result = await submitting.submit(
            recorder,
            worker_id=worker.id,
            assignment_id=work.assignment_id,
            answer={"label": "cat"},
            accepted=memo,
        )
    assert recorder.statements == [submitting.SUBMIT_IF_UNCHANGED_SQL]
    assert (result.status, result.answer) == ("submitted", {"label": "cat"})
    assert await _status(db, work.assignment_id) == ("submitted", {"label": "cat"})
    assert await _tally(db, project.id, worker.id) == (1, 1, 1)  # graded on the kept gold
    assert len(memo) == 0


async def test_through_the_api_the_fast_path_answers_as_the_read_path(
    apps: dict, tasks_client, workers_client, payments_client, db
) -> None:
    """The same response whichever path ran: one assignment submitted each way."""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    memo: AcceptedAssignments = apps["tasks"].state.accepted_assignments
    bodies = []
    for forget in (False, True):
        worker = await create_worker(workers_client)
        work = await accepted(tasks_client, worker, project.id)
        if forget:  # as if another replica had accepted it
            assert memo.take(work["assignment_id"], worker.id) is not None
        resp = await submit(tasks_client, worker, work["assignment_id"], {"label": "dog"})
        assert resp.status_code == 200, resp.text
        assert memo.take(work["assignment_id"], worker.id) is None
        bodies.append(resp.json())
    fast, read = bodies
    assert set(fast) == set(read)
    for body in bodies:
        assert (body["status"], body["answer"]) == ("submitted", {"label": "dog"})
        assert body["auto_approve_at"] is not None and body["submitted_at"] is not None


async def test_a_format_changed_since_accept_judges_the_answer(
    tasks_client, workers_client, payments_client, db
) -> None:
    """Labels cat/dog at accept, cat/bird at submit: "dog" is refused (422, nothing written)
    although the kept format allowed it, and "bird" is taken although it did not. (The API
    freezes a published project's format; an operator's UPDATE is what can still change it.)"""
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(2)
    )
    worker = await create_worker(workers_client)
    first = await accepted(tasks_client, worker, project.id)
    second = await accepted(tasks_client, worker, project.id)
    await db.execute('UPDATE projects SET labels = \'["cat", "bird"]\' WHERE id = $1', project.id)
    refused = await submit(tasks_client, worker, first["assignment_id"], {"label": "dog"})
    assert refused.status_code == 422, refused.text
    assert await _status(db, first["assignment_id"]) == ("accepted", None)
    taken = await submit(tasks_client, worker, second["assignment_id"], {"label": "bird"})
    assert taken.status_code == 200, taken.text
    assert await _tally(db, project.id, worker.id) == (1, 0, 0)


async def test_a_gold_answer_changed_since_accept_grades_the_answer(
    tasks_client, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1, gold_answer={"label": "cat"}),
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    # An operator's correction of the gold answer (the API has no such edit on a live task).
    await db.execute(
        'UPDATE tasks SET gold_answer = \'{"label": "dog"}\' WHERE id = $1', work["task_id"]
    )
    resp = await submit(tasks_client, worker, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 200, resp.text
    assert await _tally(db, project.id, worker.id) == (1, 1, 0)  # wrong on the current gold


async def test_someone_elses_submit_is_404_and_leaves_the_holders_fast_path(
    apps: dict, tasks_client, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    holder, other = await create_worker(workers_client), await create_worker(workers_client)
    work = await accepted(tasks_client, holder, project.id)
    resp = await submit(tasks_client, other, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 404
    assert await _status(db, work["assignment_id"]) == ("accepted", None)
    memo: AcceptedAssignments = apps["tasks"].state.accepted_assignments
    context = memo.take(work["assignment_id"], holder.id)
    assert context is not None
    memo.remember(work["assignment_id"], context)
    assert (await submit(tasks_client, holder, work["assignment_id"], {"label": "cat"})).is_success


async def test_a_passed_deadline_is_409_on_the_fast_path_too(
    tasks_client, workers_client, payments_client, db
) -> None:
    project = await published_project(
        tasks_client, workers_client, payments_client, tasks=cat_tasks(1)
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    await db.execute(
        "UPDATE assignments SET deadline = now() - interval '1 second' WHERE id = $1",
        work["assignment_id"],
    )
    resp = await submit(tasks_client, worker, work["assignment_id"], {"label": "cat"})
    assert resp.status_code == 409
    assert resp.json()["code"] == "assignment_expired"
    assert await _status(db, work["assignment_id"]) == ("accepted", None)


async def test_concurrent_submits_of_the_holder_decide_once(
    tasks_client: httpx.AsyncClient, workers_client, payments_client, db
) -> None:
    """One racer takes the kept context (one statement), the others read: exactly one 200,
    the others 409, and the tally counts one submission."""
    project = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=cat_tasks(1, gold_answer={"label": "cat"}),
    )
    worker = await create_worker(workers_client)
    work = await accepted(tasks_client, worker, project.id)
    racers = 6
    answers = [{"label": "cat" if i % 2 else "dog"} for i in range(racers)]
    responses = await asyncio.gather(
        *(submit(tasks_client, worker, work["assignment_id"], a) for a in answers)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (racers - 1), [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    assert await _status(db, work["assignment_id"]) == ("submitted", winner["answer"])
    correct = int(winner["answer"] == {"label": "cat"})
    assert await _tally(db, project.id, worker.id) == (1, 1, correct)


async def test_hot_statements_run_on_generic_plans_that_probe_by_key(apps: dict) -> None:
    """The hot pool forces generic plans without sequential scans
    (shared.database.HOT_PATH_SERVER_SETTINGS): accept's and submit's statements probe indexes even
    on tables of a page or two, as the suite's are (and gold_stats is right after seeding).
    The claim's scan is checked at scale in test_accept_fused."""
    async with apps["tasks"].state.database.autocommit(hot=True) as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert await conn.fetchval("SHOW enable_seqscan") == "off"
        for name, sql, types in (
            ("accept", accepting.ACCEPT_FUSED_SQL, "text, text, integer, text"),
            ("read", submitting._FOR_SUBMIT, "text, text"),
            ("write", submitting.SUBMIT_SQL, "text, text, text, integer, integer"),
            (
                "write_if_unchanged",
                submitting.SUBMIT_IF_UNCHANGED_SQL,
                "text, text, text, integer, integer, text, text, boolean, text, text",
            ),
        ):
            await conn.execute(f"PREPARE probe_{name} ({types}) AS {sql}")
            try:
                count = types.count(",") + 1
                plan = "\n".join(
                    r[0]
                    for r in await conn.fetch(
                        f"EXPLAIN EXECUTE probe_{name} ({', '.join(['NULL'] * count)})"
                    )
                )
            finally:
                await conn.execute(f"DEALLOCATE probe_{name}")
            # The suite's tables are small (projects, gold_stats, blocks: a page or two), where
            # a planner left to itself reads them whole.
            assert "Seq Scan" not in plan, (name, plan)
            if name == "accept":
                # Skipping the worker's own tasks: one probe of (task_id, worker_id) per
                # candidate, never a read of all the worker's assignments.
                assert "using uq_assignments_task_id_worker_id on assignments x" in plan, plan
                assert "ix_assignments_worker_id_id on assignments x" not in plan, plan
