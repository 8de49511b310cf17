"""SQL for projects: rows, live counts and money, state changes (Core: CRUD and list-built
statements, see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, insert, literal_column, select, update

from shared.database import Db, Writable, as_row, as_rows
from shared.models import Assignment, Project, Task
from shared.models.hourly import HourlyBudget
from shared.models.pay_floor import PayFloor
from shared.models.workers import QualificationType
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A `projects` row, every column."""

    id: str
    requester_id: str
    status: str
    title: str
    description: str
    instructions: str
    keywords: list[str]
    task_type: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] | None
    reward_cents: int
    fee_cents: int
    assignments_per_task: int
    assignment_duration_seconds: int
    lifetime_seconds: int
    auto_approve_seconds: int
    estimated_seconds_per_assignment: int | None
    qualification_requirements: list[dict[str, Any]]
    min_gold_accuracy: int | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    closed_at: datetime | None
    tasks_expire_at: datetime | None
    tasks_expiry_swept_at: datetime | None
    pay_model: str
    hourly_rate_cents: int | None
    max_seconds_per_worker_per_week: int | None
    budget_seconds: int | None
    idle_timeout_seconds: int | None
    min_hourly_rate_cents: int | None
    # Training projects (services/tasks/training): NULL on standard ones.
    kind: str
    training_qualification_type_id: str | None
    min_training_answers: int | None
    pass_accuracy: int | None
    # Pay tiers (services/tasks/pay_tiers): as set, resolved per level 0..3, and a slot's hold.
    reward_by_level: dict[str, int] | None
    level_reward_cents: list[int] | None
    level_fee_cents: list[int] | None
    slot_cents: int
    hourly_rate_by_level: dict[str, int] | None
    level_hourly_rate_cents: list[int] | None


_PROJECT_COLS = tuple(Project.__table__.c)


async def insert_project(db: Writable, values: dict[str, Any]) -> ProjectRow:
    stmt = insert(Project).values(**values).returning(*_PROJECT_COLS)
    row = as_row(ProjectRow, await db.fetchrow(stmt))
    assert row is not None
    return row


ProjectLock = Literal["change", "close"]


async def get_project(
    db: Db, *, project_id: str, requester_id: str, lock: ProjectLock | None = None
) -> ProjectRow | None:
    """The requester's project; another requester's is None, exactly like a missing one.

    Every change of a project (edit, publish, pause, resume, upload) takes `FOR NO KEY UPDATE`
    ("change"), so they run one at a time and money is reserved once per change. Close takes
    `FOR UPDATE` ("close", services/tasks/lifecycle/close.py), which also waits out the queue
    side's `FOR KEY SHARE` (a slot being given back): no slot can reopen in a project whose
    unused money close is releasing. Changes other than close do not block
    those slot returns, so a 10,000-task upload never stalls the queue. A lock needs the
    request's transaction: pass a WriteDb.
    """
    stmt = select(*_PROJECT_COLS).where(
        Project.id == project_id, Project.requester_id == requester_id
    )
    if lock is not None:
        stmt = stmt.with_for_update(key_share=lock == "change")
    return as_row(ProjectRow, await db.fetchrow(stmt))


async def list_projects(
    db: Db, *, requester_id: str, before_id: str | None, limit: int
) -> list[ProjectRow]:
    stmt = newest_first(
        select(*_PROJECT_COLS).where(Project.requester_id == requester_id),
        Project.id,
        before_id=before_id,
        limit=limit,
    )
    return as_rows(ProjectRow, await db.fetch(stmt))


async def update_project(db: Writable, *, project_id: str, values: dict[str, Any]) -> ProjectRow:
    stmt = (
        update(Project)
        .where(Project.id == project_id)
        .values(**values, updated_at=func.now())
        .returning(*_PROJECT_COLS)
    )
    row = as_row(ProjectRow, await db.fetchrow(stmt))
    assert row is not None
    return row


@dataclass(frozen=True, slots=True)
class ProjectStats:
    tasks: int = 0
    open_slots: int = 0
    accepted: int = 0
    submitted: int = 0
    approved: int = 0
    rejected: int = 0
    live_cents: int = 0  # reward + fee of accepted and submitted assignments
    approved_cents: int = 0  # reward + fee of approved assignments
    # Hourly projects (their `hourly_budgets` row, written at publish): measured seconds taken
    # from the budget, what the reservation still holds, and what timesheets paid (pay + fee).
    hourly_used_seconds: int | None = None
    hourly_held_cents: int = 0
    hourly_paid_cents: int = 0
    # A pay floor (`pay_floors`, written at publish): what its reserve still holds, and the
    # top-ups (+ fees) it paid.
    floor_held_cents: int = 0
    floor_paid_cents: int = 0


@dataclass(frozen=True, slots=True)
class TaskTotalsRow:
    project_id: str
    tasks: int
    open_slots: int


@dataclass(frozen=True, slots=True)
class AssignmentTotalsRow:
    project_id: str
    status: str
    n: int
    cents: int


async def project_stats(db: Db, project_ids: Sequence[str]) -> dict[str, ProjectStats]:
    """Live counts for a page of projects in two grouped queries (tasks, then assignments)."""
    if not project_ids:
        return {}
    ids = list(project_ids)
    task_totals = (
        select(
            Task.project_id,
            func.count().label("tasks"),
            func.coalesce(func.sum(Task.open_slots), 0).label("open_slots"),
        )
        .where(Task.project_id.in_(ids))
        .group_by(Task.project_id)
    )
    assignment_totals = (
        select(
            Assignment.project_id,
            Assignment.status,
            func.count().label("n"),
            func.coalesce(func.sum(Assignment.reward_cents + Assignment.fee_cents), 0).label(
                "cents"
            ),
        )
        .where(
            Assignment.project_id.in_(ids),
            Assignment.status.in_(("accepted", "submitted", "approved", "rejected")),
        )
        .group_by(Assignment.project_id, Assignment.status)
    )
    acc: dict[str, dict[str, int]] = {pid: {} for pid in ids}
    for row in as_rows(TaskTotalsRow, await db.fetch(task_totals)):
        acc[row.project_id].update(tasks=row.tasks, open_slots=row.open_slots)
    for row in as_rows(AssignmentTotalsRow, await db.fetch(assignment_totals)):
        entry = acc[row.project_id]
        entry[row.status] = row.n
        if row.status in ("accepted", "submitted"):
            entry["live_cents"] = entry.get("live_cents", 0) + row.cents
        elif row.status == "approved":
            entry["approved_cents"] = row.cents
    hourly = select(
        HourlyBudget.project_id,
        HourlyBudget.used_seconds,
        HourlyBudget.reserved_cents,
        HourlyBudget.paid_cents,
        HourlyBudget.released_cents,
    ).where(HourlyBudget.project_id.in_(ids))
    for budget in await db.fetch(hourly):
        acc[budget["project_id"]].update(
            hourly_used_seconds=budget["used_seconds"],
            hourly_held_cents=budget["reserved_cents"]
            - budget["paid_cents"]
            - budget["released_cents"],
            hourly_paid_cents=budget["paid_cents"],
        )
    floors = select(
        PayFloor.project_id, PayFloor.reserved_cents, PayFloor.paid_cents, PayFloor.released_cents
    ).where(PayFloor.project_id.in_(ids))
    for floor in await db.fetch(floors):
        acc[floor["project_id"]].update(
            floor_held_cents=floor["reserved_cents"]
            - floor["paid_cents"]
            - floor["released_cents"],
            floor_paid_cents=floor["paid_cents"],
        )
    return {pid: ProjectStats(**values) for pid, values in acc.items()}


async def insert_hourly_budget(
    db: Writable, *, project_id: str, budget_seconds: int, reserved_cents: int
) -> None:
    await db.execute(
        insert(HourlyBudget).values(
            project_id=project_id, budget_seconds=budget_seconds, reserved_cents=reserved_cents
        )
    )


# Publish's value for `projects.tasks_expire_at`: the transaction's now() (the same instant as
# its published_at) plus the project row's own lifetime_seconds.
TASKS_EXPIRE_AT_ON_PUBLISH = literal_column("now() + make_interval(secs => lifetime_seconds)")


async def active_qualification_type_ids(db: Db, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    stmt = select(QualificationType.id).where(
        QualificationType.id.in_(list(ids)), QualificationType.status == "active"
    )
    return {r["id"] for r in await db.fetch(stmt)}


@dataclass(frozen=True, slots=True)
class GoldAnswerRow:
    id: str
    gold_answer: Any


async def gold_answers(db: Db, *, project_id: str) -> list[GoldAnswerRow]:
    stmt = (
        select(Task.id, Task.gold_answer)
        .where(Task.project_id == project_id, Task.gold_answer.is_not(None))
        .order_by(Task.id)
    )
    return as_rows(GoldAnswerRow, await db.fetch(stmt))
