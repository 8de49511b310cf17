"""Task rules: bulk upload (all-or-nothing, money first on live projects) and the owner's reads.

An upload to a published or paused project reserves its slots' reward + fee with the payments
service under `add-tasks:{project_id}:{batch_id}` as the request's last step, so a 402 leaves
no task behind. The project row is locked for the upload, which orders it against publish and
close: tasks can never slip into a project between its reservation and its release.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from services.tasks.answers import (
    QUESTION_TASK_TYPE,
    effective_answer_schema,
    task_answer_problems,
    task_input_problems,
    validate_answer,
)
from services.tasks.lifecycle.assignment import assignment_read
from services.tasks.pay_floor import service as pay_floor
from services.tasks.projects.repository import ProjectRow
from services.tasks.projects.service import load_project, reserve
from services.tasks.tasks import repository
from services.tasks.tasks.repository import TaskRow
from services.tasks.tasks.schemas import AssignmentRead, TaskRead, TasksCreated
from services.tasks.tasks.upload import ParsedUpload, UploadedTask, parse_upload
from services.tasks.training import service as training
from shared.database import Db, WriteDb
from shared.errors import InvalidState, NotFound, ValidationFailed
from shared.http import InternalClient
from shared.ids import new_id
from shared.pagination import Page, PageParams

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> 2 characters


UploadParser = Callable[[ProjectRow, str | None, bytes, int], ParsedUpload]
"""Reads an upload body in another format (project, content type, body, max tasks)."""


class TaskNotFound(NotFound):
    code = "not_found"


def sequential_ids(count: int) -> list[str]:
    """`count` ids in the layout of `shared.ids.new_id` (48-bit ms time + 80 random bits) that
    also sort in upload order: one random start, then +1 per task.

    The random part's top bit starts clear, so adding up to 10,000 never carries into the time.
    Encoding only the low 20 bits per id (two table lookups) keeps 10,000 ids near 5 ms.
    """
    start = (int(time.time() * 1000) << 80) | (int.from_bytes(os.urandom(10), "big") >> 1)
    ids: list[str] = []
    prefix_value = -1
    prefix = ""
    for value in range(start, start + count):
        high = value >> 20
        if high != prefix_value:
            prefix_value, prefix = high, _encode(high, 22)
        low = value & 0xFFFFF
        ids.append(prefix + _PAIRS[low >> 10] + _PAIRS[low & 0x3FF])
    return ids


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _gold_problems(schema: dict[str, Any], tasks: list[UploadedTask]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for task in tasks:
        if task.gold_answer is None:
            continue
        for problem in validate_answer(schema, task.gold_answer):
            path = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in problem["loc"])
            problems.append({"loc": task.loc, "msg": f"gold_answer{path}: {problem['msg']}"})
    return problems


def _input_problems(task_type: str, tasks: list[UploadedTask]) -> list[dict[str, Any]]:
    """Inputs the project's type constrains (mturk_question: a question document), and gold
    answers checked against them (mturk_question: the task's own question)."""
    problems: list[dict[str, Any]] = []
    if task_type != QUESTION_TASK_TYPE:
        return problems
    for task in tasks:
        input_msgs = task_input_problems(task_type, task.input)
        for msg in input_msgs:
            problems.append({"loc": task.loc, "msg": f"input: {msg}"})
        if input_msgs or task.gold_answer is None:
            continue
        for problem in task_answer_problems(task_type, task.input, task.gold_answer):
            path = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in problem["loc"])
            problems.append({"loc": task.loc, "msg": f"gold_answer{path}: {problem['msg']}"})
    return problems


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector out of one synchronous burst of allocations.

    Parsing 10,000 tasks allocates ~100k acyclic objects (dicts, lists, tuples) that reference
    counting frees anyway; left on, the collector runs full passes over the whole heap in the
    middle of it, which measured at up to 200 ms on a 20 ms parse. No await happens inside, so
    no other request runs while it is off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rows_for_copy(
    project: ProjectRow,
    tasks: list[UploadedTask],
    *,
    ids: list[str],
    expires_at: datetime | None,
) -> tuple[list[tuple[Any, ...]], int]:
    """COPY records in `repository.COPY_COLUMNS` order, and the number of slots they open."""
    default_slots = project.assignments_per_task
    records = []
    slots = 0
    for task_id, task in zip(ids, tasks, strict=True):
        max_assignments = task.max_assignments or default_slots
        slots += max_assignments
        records.append(
            (
                task_id,
                project.id,
                project.requester_id,
                task.external_id,
                orjson.dumps(task.input).decode(),
                None if task.gold_answer is None else orjson.dumps(task.gold_answer).decode(),
                task.explanation,
                max_assignments,
                max_assignments,
                "open",
                expires_at,
            )
        )
    return records, slots


async def add_tasks(
    db: WriteDb,
    *,
    payments: InternalClient,
    requester_id: str,
    project_id: str,
    content_type: str | None,
    body: bytes,
    max_tasks: int,
    idempotency_key: str | None = None,
    parser: UploadParser | None = None,
) -> TasksCreated:
    """`parser` reads another tool's export (the project, locked, is handed to it: a Label
    Studio export's annotations become gold answers through the project's layout); by default
    the body is one of the native forms, chosen by its media type."""
    project = await load_project(
        db, requester_id=requester_id, project_id=project_id, lock="change"
    )
    if project.status == "closed":
        raise InvalidState("A closed project takes no new tasks.")
    live = project.status in ("published", "paused")
    # Tasks added to a live project expire lifetime_seconds after this upload (the contract);
    # a draft's tasks get no expiry of their own (NULL): they inherit the project's, which
    # publish sets on the project row, so publishing rewrites none of them. Either way they
    # go in with every slot open; a draft's are unclaimable until the project is published.
    expires_at = (
        await repository.expiry_from_now(db, lifetime_seconds=project.lifetime_seconds)
        if live
        else None
    )
    with _gc_paused():
        parsed = (
            parser(project, content_type, body, max_tasks)
            if parser is not None
            else parse_upload(content_type, body, max_tasks=max_tasks)
        )
        schema = effective_answer_schema(project)
        problems = (
            parsed.problems
            + _input_problems(project.task_type, parsed.tasks)
            + _gold_problems(schema, parsed.tasks)
        )
        # Explanations, and a live training project's need of gold answers and explanations.
        training_problems, untrained = training.upload_problems(
            kind=project.kind, live=live, tasks=parsed.tasks
        )
        problems += training_problems
        if problems:
            problems.sort(key=lambda p: p["loc"][1] if len(p["loc"]) > 1 else -1)
            broken_rows = len({tuple(p["loc"]) for p in problems})
            raise ValidationFailed(
                f"{broken_rows} row(s) of the upload are invalid; nothing was created.",
                errors=problems,
                code="training_task_without_gold" if untrained else None,
            )
        ids = sequential_ids(len(parsed.tasks))
        records, slots = _rows_for_copy(project, parsed.tasks, ids=ids, expires_at=expires_at)
    await repository.copy_tasks(db, records)
    if live:
        # Last step: a 402 or 503 here rolls the COPY back. With an Idempotency-Key the
        # reservation's key derives from it, so a client retrying after our commit failed (the
        # reservation having acted) replays that reservation instead of holding the money twice.
        batch = (
            hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
            if idempotency_key
            else new_id()
        )
        amount = slots * project.slot_cents  # the highest tier's reward + fee per slot
        amount += await pay_floor.reserve_for_new_slots(db, project_id=project.id, slots=slots)
        if amount:  # a training project may pay 0.00: nothing to hold
            await reserve(payments, project, amount, key=f"add-tasks:{project.id}:{batch}")
    return TasksCreated(created=len(ids), task_ids=ids)


def _task(row: TaskRow, assignments: list[AssignmentRead]) -> TaskRead:
    return TaskRead(
        id=row.id,
        project_id=row.project_id,
        external_id=row.external_id,
        input=row.input,
        is_gold=row.gold_answer is not None,
        gold_answer=row.gold_answer,
        explanation=row.explanation,
        status=row.status,
        max_assignments=row.max_assignments,
        open_slots=row.open_slots,
        created_at=row.created_at,
        expires_at=row.expires_at,
        disposed_at=row.disposed_at,
        assignments=assignments,
    )


async def _with_assignments(db: Db, rows: list[TaskRow]) -> list[TaskRead]:
    by_task: dict[str, list[AssignmentRead]] = defaultdict(list)
    for a in await repository.assignments_of_tasks(db, [r.id for r in rows]):
        by_task[a.task_id].append(assignment_read(a))
    return [_task(r, by_task.get(r.id, [])) for r in rows]


async def list_tasks(
    db: Db,
    *,
    requester_id: str,
    project_id: str,
    status: str | None,
    page: PageParams,
    include_disposed: bool = False,
) -> Page[TaskRead]:
    project = await load_project(db, requester_id=requester_id, project_id=project_id)
    rows = await repository.list_tasks(
        db,
        project_id=project.id,
        status=status,
        before_id=page.before,
        limit=page.fetch,
        include_disposed=include_disposed,
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=await _with_assignments(db, kept), next_cursor=next_cursor)


async def get_task(db: Db, *, requester_id: str, task_id: str) -> TaskRead:
    row = await repository.get_task(db, task_id=task_id, requester_id=requester_id)
    if row is None:
        raise TaskNotFound("Task not found.")
    return (await _with_assignments(db, [row]))[0]
