"""Project rules: validation beyond field shapes, the state machine, and the money it moves.

States: draft → published ⇄ paused → closed (closed is final; a draft may be closed too).
Publishing reserves every slot's reward + fee with the payments service under the key
`publish:{project_id}`; the reservation is the last step of the request, after every row is
written, so a 402 or an unreachable payments service rolls the whole change back and a retry can
never reserve twice (payments answers a repeated key with the first result). Closing is an
assignment-lifecycle transition (services/tasks/lifecycle/close.py): it hands the unused slots'
money back through the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import func

from services.tasks.answers import (
    answer_schema_for,
    effective_answer_schema,
    schema_problems,
    validate_answer,
)
from services.tasks.clock import utcnow
from services.tasks.pay_floor import service as pay_floor
from services.tasks.pay_tiers import rules as pay_tiers
from services.tasks.projects import repository
from services.tasks.projects.repository import ProjectLock, ProjectRow, ProjectStats
from services.tasks.projects.schemas import (
    ProjectCounts,
    ProjectCreate,
    ProjectMoney,
    ProjectRead,
    ProjectUpdate,
    QualificationRequirement,
    hours_to_seconds,
)
from services.tasks.sessions.service import end_project_sessions
from services.tasks.training import service as training
from shared.database import Db, WriteDb
from shared.eligibility import SYSTEM_TYPE_IDS
from shared.errors import InvalidState, NotFound, ValidationFailed
from shared.fees import fee_cents
from shared.http import InternalClient
from shared.ids import new_id
from shared.pagination import Page, PageParams

# Once money is reserved the reward, the number of slots and the answer format are fixed;
# texts and rules that move no money stay editable while the project is live.
EDITABLE_WHEN_LIVE = frozenset(
    {
        "title",
        "description",
        "instructions",
        "keywords",
        "estimated_seconds_per_assignment",
        "auto_approve_seconds",
        "assignment_duration_seconds",
        "qualification_requirements",
        "min_gold_accuracy",
    }
)
NULLABLE_FIELDS = frozenset(
    {
        "labels",
        "answer_schema",
        "estimated_seconds_per_assignment",
        "min_gold_accuracy",
        "min_hourly_rate",
        "reward_by_level",
    }
)
_COLUMN_OF = {"reward": "reward_cents", "min_hourly_rate": "min_hourly_rate_cents"}
ANSWER_FORMAT_FIELDS = frozenset({"task_type", "labels", "multi_label", "answer_schema"})
MAX_GOLD_ERRORS = 100


class ProjectNotFound(NotFound):
    code = "not_found"


def fee_for(reward_cents: int, *, assignments_per_task: int) -> int:
    """The platform fee per assignment: the payments side's rule (shared/fees.py), so the fee
    reserved here is the fee payments charges at payout."""
    return fee_cents(reward_cents, assignments_per_task=assignments_per_task)


def to_read(row: ProjectRow, stats: ProjectStats) -> ProjectRead:
    # Every slot, open or held by a live assignment, holds the highest tier's reward + fee
    # (without tiers: the reward + fee its assignment was created with).
    live = stats.accepted + stats.submitted
    reserved = 0 if row.status == "draft" else (stats.open_slots + live) * row.slot_cents
    return ProjectRead(
        id=row.id,
        requester_id=row.requester_id,
        status=row.status,
        title=row.title,
        description=row.description,
        instructions=row.instructions,
        keywords=list(row.keywords),
        task_type=row.task_type,
        labels=row.labels,
        multi_label=row.multi_label,
        answer_schema=effective_answer_schema(row),
        reward=row.reward_cents,
        fee_per_assignment=row.fee_cents,
        assignments_per_task=row.assignments_per_task,
        assignment_duration_seconds=row.assignment_duration_seconds,
        lifetime_seconds=row.lifetime_seconds,
        auto_approve_seconds=row.auto_approve_seconds,
        estimated_seconds_per_assignment=row.estimated_seconds_per_assignment,
        qualification_requirements=row.qualification_requirements,
        min_gold_accuracy=row.min_gold_accuracy,
        min_hourly_rate=row.min_hourly_rate_cents,
        counts=ProjectCounts(
            tasks=stats.tasks,
            open_slots=stats.open_slots,
            accepted=stats.accepted,
            submitted=stats.submitted,
            approved=stats.approved,
            rejected=stats.rejected,
        ),
        pay_model=row.pay_model,
        hourly_rate=row.hourly_rate_cents,
        reward_by_level=row.reward_by_level,
        hourly_rate_by_level=row.hourly_rate_by_level,
        kind=row.kind,
        training=training.rule_of(row),
        max_hours_per_worker_per_week=_hours(row.max_seconds_per_worker_per_week),
        budget_hours=_hours(row.budget_seconds),
        idle_timeout_seconds=row.idle_timeout_seconds,
        budget_hours_used=(
            None if row.pay_model != "hourly" else round((stats.hourly_used_seconds or 0) / 3600, 4)
        ),
        money=ProjectMoney(
            reserved=reserved + stats.hourly_held_cents + stats.floor_held_cents,
            spent=stats.approved_cents + stats.hourly_paid_cents + stats.floor_paid_cents,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_at=row.published_at,
        closed_at=row.closed_at,
    )


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 4)


DEFAULT_IDLE_TIMEOUT_SECONDS = 300


def pay_model_errors(data: ProjectCreate) -> list[dict[str, Any]]:
    """Which fields a pay model needs and refuses. Per-answer: `reward` required, the hourly
    fields refused. Hourly: `hourly_rate` and `budget_hours` required, `reward` refused (an
    hourly project pays time, never answers); the answers' review, gold and auto-approval work
    as in any project."""
    errors: list[dict[str, Any]] = []

    def bad(field: str, msg: str) -> None:
        errors.append({"loc": ["body", field], "msg": msg})

    hourly_fields = (
        "hourly_rate",
        "max_hours_per_worker_per_week",
        "budget_hours",
        "idle_timeout_seconds",
    )
    if data.pay_model == "hourly":
        if data.reward is not None:
            bad("reward", "an hourly project pays hourly_rate, not a reward per answer")
        if data.hourly_rate is None:
            bad("hourly_rate", "an hourly project needs an hourly_rate")
        if data.budget_hours is None:
            bad("budget_hours", "an hourly project needs budget_hours")
    else:
        if data.reward is None:
            bad("reward", "a per_assignment project needs a reward")
        for name in hourly_fields:
            if getattr(data, name) is not None:
                bad(name, f"{name} is for hourly projects (pay_model: hourly)")
    return errors


def pay_floor_errors(*, pay_model: str, min_hourly_rate_cents: int | None) -> list[dict[str, Any]]:
    """A pay floor is for per-answer work: an hourly project already pays by the hour."""
    if min_hourly_rate_cents is not None and pay_model != "per_assignment":
        return [
            {
                "loc": ["body", "min_hourly_rate"],
                "msg": "min_hourly_rate is for per-answer projects; an hourly project pays "
                "hourly_rate",
            }
        ]
    return []


def answer_format_errors(
    *,
    task_type: str,
    labels: Sequence[str] | None,
    multi_label: bool,
    answer_schema: Any,
) -> list[dict[str, Any]]:
    """Cross-field rules of the answer format (field shapes are pydantic's job)."""
    errors: list[dict[str, Any]] = []

    def bad(field: str, msg: str) -> None:
        errors.append({"loc": ["body", field], "msg": msg})

    if task_type == "classification" and not labels:
        bad("labels", "a classification project needs 2-100 labels")
    if labels is not None and task_type not in ("classification", "bounding_box"):
        bad("labels", f"labels are for classification and bounding_box, not {task_type}")
    if multi_label and task_type != "classification":
        bad("multi_label", "multi_label is only for classification")
    if task_type == "free_form":
        if answer_schema is None:
            bad("answer_schema", "a free_form project needs an answer_schema (a JSON Schema)")
        else:
            for msg in schema_problems(answer_schema):
                bad("answer_schema", msg)
    elif answer_schema is not None:
        bad("answer_schema", "answer_schema is only for free_form; built-in types derive theirs")
    return errors


async def requirement_errors(
    db: Db, requirements: Sequence[QualificationRequirement]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Referenced types must exist and be active, or be system types (their value rules were
    checked by the shared model). Returns (errors, the requirements as stored)."""
    custom_ids = {
        r.qualification_type_id
        for r in requirements
        if r.qualification_type_id not in SYSTEM_TYPE_IDS
    }
    active = await repository.active_qualification_type_ids(db, sorted(custom_ids))
    errors = [
        {
            "loc": ["body", "qualification_requirements", i, "qualification_type_id"],
            "msg": "no active qualification type has this id",
        }
        for i, req in enumerate(requirements)
        if req.qualification_type_id not in SYSTEM_TYPE_IDS
        and req.qualification_type_id not in active
    ]
    return errors, [req.model_dump() for req in requirements]


async def create_project(db: WriteDb, *, requester_id: str, data: ProjectCreate) -> ProjectRead:
    errors = answer_format_errors(
        task_type=data.task_type,
        labels=data.labels,
        multi_label=data.multi_label,
        answer_schema=data.answer_schema,
    )
    requirement_problems, requirements = await requirement_errors(
        db, data.qualification_requirements
    )
    errors += requirement_problems
    errors += pay_floor_errors(
        pay_model=getattr(data, "pay_model", "per_assignment"),
        min_hourly_rate_cents=data.min_hourly_rate,
    )
    errors += pay_model_errors(data)
    errors += await training.project_errors(
        db,
        requester_id=requester_id,
        kind=data.kind,
        training=data.training,
        pay_model=data.pay_model,
        reward_cents=data.reward,
        min_hourly_rate_cents=data.min_hourly_rate,
    )
    errors += pay_tier_errors(
        pay_model=data.pay_model,
        reward_cents=data.reward,
        reward_by_level=data.reward_by_level,
        hourly_rate_cents=data.hourly_rate,
        hourly_rate_by_level=data.hourly_rate_by_level,
    )
    if errors:
        raise ValidationFailed(_summary(errors), errors=errors)
    row = await repository.insert_project(
        db,
        {
            "id": new_id(),
            "requester_id": requester_id,
            "status": "draft",
            "title": data.title,
            "description": data.description,
            "instructions": data.instructions,
            "keywords": data.keywords,
            "task_type": data.task_type,
            "labels": data.labels,
            "multi_label": data.multi_label,
            "answer_schema": data.answer_schema,
            "reward_cents": data.reward or 0,
            "fee_cents": fee_for(data.reward or 0, assignments_per_task=data.assignments_per_task),
            "assignments_per_task": data.assignments_per_task,
            "assignment_duration_seconds": data.assignment_duration_seconds,
            "lifetime_seconds": data.lifetime_seconds,
            "auto_approve_seconds": data.auto_approve_seconds,
            "estimated_seconds_per_assignment": data.estimated_seconds_per_assignment,
            "qualification_requirements": requirements,
            "min_gold_accuracy": data.min_gold_accuracy,
            "min_hourly_rate_cents": data.min_hourly_rate,
            **_hourly_columns(data),
            **training.project_columns(data.kind, data.training),
            **reward_tier_columns(
                reward_cents=data.reward or 0,
                reward_by_level=data.reward_by_level,
                assignments_per_task=data.assignments_per_task,
            ),
        },
    )
    return to_read(row, ProjectStats())


def pay_tier_errors(
    *,
    pay_model: str,
    reward_cents: int | None,
    reward_by_level: dict[str, int] | None,
    hourly_rate_cents: int | None,
    hourly_rate_by_level: dict[str, int] | None,
) -> list[dict[str, Any]]:
    """Tiers belong to their pay model and obey services/tasks/pay_tiers/rules.py."""
    errors: list[dict[str, Any]] = []
    if reward_by_level is not None and pay_model != "per_assignment":
        errors.append(
            {
                "loc": ["body", "reward_by_level"],
                "msg": "reward_by_level is for per-answer projects; an hourly project sets "
                "hourly_rate_by_level",
            }
        )
    elif reward_cents is not None:
        errors += pay_tiers.tier_errors(
            "reward_by_level", base_cents=reward_cents, tiers=reward_by_level
        )
    if hourly_rate_by_level is not None and pay_model != "hourly":
        errors.append(
            {
                "loc": ["body", "hourly_rate_by_level"],
                "msg": "hourly_rate_by_level is for hourly projects (pay_model: hourly)",
            }
        )
    elif hourly_rate_cents is not None:
        errors += pay_tiers.tier_errors(
            "hourly_rate_by_level", base_cents=hourly_rate_cents, tiers=hourly_rate_by_level
        )
    return errors


def reward_tier_columns(
    *, reward_cents: int, reward_by_level: dict[str, int] | None, assignments_per_task: int
) -> dict[str, Any]:
    """The tier columns as stored: the map as set and its per-level rewards and fees."""
    rewards = pay_tiers.resolved(reward_cents, reward_by_level)
    return {
        "reward_by_level": reward_by_level,
        "level_reward_cents": rewards,
        "level_fee_cents": pay_tiers.resolved_fees(
            rewards, assignments_per_task=assignments_per_task
        ),
    }


def _hourly_columns(data: ProjectCreate) -> dict[str, Any]:
    if data.pay_model != "hourly":
        return {"pay_model": "per_assignment"}
    return {
        "pay_model": "hourly",
        "hourly_rate_cents": data.hourly_rate,
        "hourly_rate_by_level": data.hourly_rate_by_level,
        "level_hourly_rate_cents": pay_tiers.resolved(
            data.hourly_rate or 0, data.hourly_rate_by_level
        ),
        "max_seconds_per_worker_per_week": (
            None
            if data.max_hours_per_worker_per_week is None
            else hours_to_seconds(data.max_hours_per_worker_per_week)
        ),
        "budget_seconds": None
        if data.budget_hours is None
        else hours_to_seconds(data.budget_hours),
        "idle_timeout_seconds": data.idle_timeout_seconds or DEFAULT_IDLE_TIMEOUT_SECONDS,
    }


async def list_projects(db: Db, *, requester_id: str, page: PageParams) -> Page[ProjectRead]:
    rows = await repository.list_projects(
        db, requester_id=requester_id, before_id=page.before, limit=page.fetch
    )
    kept, next_cursor = page.page_by_id(rows)
    stats = await repository.project_stats(db, [r.id for r in kept])
    return Page(items=[to_read(r, stats[r.id]) for r in kept], next_cursor=next_cursor)


async def reserve(
    payments: InternalClient, project: ProjectRow, amount_cents: int, *, key: str
) -> None:
    """Hold `amount_cents` of the project's requester for the project in payments (a repeated
    `key` acts once); a 402 or 503 raises here."""
    await payments.post(
        "/internal/reservations",
        json={
            "key": key,
            "requester_id": project.requester_id,
            "project_id": project.id,
            "amount_cents": amount_cents,
        },
    )


async def load_project(
    db: Db,
    *,
    requester_id: str,
    project_id: str,
    lock: ProjectLock | None = None,
) -> ProjectRow:
    """The caller's project row or 404 (someone else's project is indistinguishable). With a
    `lock`, `db` is the request's transaction (a WriteDb): the lock lasts until it ends."""
    row = await repository.get_project(
        db, project_id=project_id, requester_id=requester_id, lock=lock
    )
    if row is None:
        raise ProjectNotFound("Project not found.")
    return row


async def read_project(db: Db, row: ProjectRow) -> ProjectRead:
    stats = await repository.project_stats(db, [row.id])
    return to_read(row, stats[row.id])


async def get_project(db: Db, *, requester_id: str, project_id: str) -> ProjectRead:
    row = await load_project(db, requester_id=requester_id, project_id=project_id)
    return await read_project(db, row)


async def update_project(
    db: WriteDb, *, requester_id: str, project_id: str, data: ProjectUpdate
) -> ProjectRead:
    row = await load_project(db, requester_id=requester_id, project_id=project_id, lock="change")
    sent = set(data.model_fields_set)
    errors = [
        {"loc": ["body", name], "msg": "may not be null"}
        for name in sorted(sent)
        if getattr(data, name) is None and name not in NULLABLE_FIELDS
    ]
    if errors:
        raise ValidationFailed(_summary(errors), errors=errors)
    if row.status == "closed":
        raise InvalidState("A closed project cannot be changed.")
    if row.status != "draft":
        # Sending a frozen field back unchanged (a client PUT-ing the whole object) is fine.
        frozen = sorted(
            name
            for name in sent - EDITABLE_WHEN_LIVE
            if getattr(data, name) != getattr(row, _COLUMN_OF.get(name, name))
        )
        if frozen:
            raise InvalidState(
                f"A {row.status} project's {', '.join(frozen)} cannot change: money is "
                "reserved for its slots. Close it and create a new project instead.",
                errors=[
                    {"loc": ["body", f], "msg": f"not editable while {row.status}"} for f in frozen
                ],
            )
    values = {_COLUMN_OF.get(name, name): getattr(data, name) for name in sent}
    merged = {**_columns(row), **values}
    if sent & ANSWER_FORMAT_FIELDS:
        errors += answer_format_errors(
            task_type=merged["task_type"],
            labels=merged["labels"],
            multi_label=merged["multi_label"],
            answer_schema=merged["answer_schema"],
        )
    if "min_hourly_rate" in sent:
        errors += pay_floor_errors(
            pay_model=merged.get("pay_model", "per_assignment"),
            min_hourly_rate_cents=merged["min_hourly_rate_cents"],
        )
    if {"reward", "reward_by_level"} & sent:
        errors += pay_tier_errors(
            pay_model=row.pay_model,
            reward_cents=merged["reward_cents"],
            reward_by_level=merged["reward_by_level"],
            hourly_rate_cents=None,
            hourly_rate_by_level=None,
        )
    if data.reward == 0 and row.kind != "training":
        errors.append(
            {
                "loc": ["body", "reward"],
                "msg": "reward must be at least 0.01 (only a training project may pay 0)",
            }
        )
    if "reward" in sent and row.pay_model == "hourly":
        # The hourly terms are fixed at creation; an hourly project never pays per answer.
        errors.append(
            {"loc": ["body", "reward"], "msg": "an hourly project pays hourly_rate, not a reward"}
        )
    if "qualification_requirements" in sent:
        problems, values["qualification_requirements"] = await requirement_errors(
            db, data.qualification_requirements or []
        )
        errors += problems
    if errors:
        raise ValidationFailed(_summary(errors), errors=errors)
    if sent & ANSWER_FORMAT_FIELDS:
        errors = await _gold_answers_still_valid(db, project_id=row.id, merged=merged)
        if errors:
            raise ValidationFailed(
                "The new answer format rejects some gold answers; fix or remove those tasks first.",
                code="gold_answers_invalid",
                errors=errors,
            )
    if {"reward", "assignments_per_task"} & sent:
        values["fee_cents"] = fee_for(
            merged["reward_cents"], assignments_per_task=merged["assignments_per_task"]
        )
    if {"reward", "assignments_per_task", "reward_by_level"} & sent:
        values.update(
            reward_tier_columns(
                reward_cents=merged["reward_cents"],
                reward_by_level=merged["reward_by_level"],
                assignments_per_task=merged["assignments_per_task"],
            )
        )
    if not values:
        return await read_project(db, row)
    updated = await repository.update_project(db, project_id=row.id, values=values)
    return await read_project(db, updated)


def _columns(row: ProjectRow) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(row)}


async def _gold_answers_still_valid(
    db: Db, *, project_id: str, merged: dict[str, Any]
) -> list[dict[str, Any]]:
    schema = answer_schema_for(
        task_type=merged["task_type"],
        labels=merged["labels"],
        multi_label=merged["multi_label"],
        answer_schema=merged["answer_schema"],
    )
    errors: list[dict[str, Any]] = []
    for task in await repository.gold_answers(db, project_id=project_id):
        for problem in validate_answer(schema, task.gold_answer):
            errors.append(
                {"loc": ["tasks", task.id, "gold_answer", *problem["loc"]], "msg": problem["msg"]}
            )
        if len(errors) >= MAX_GOLD_ERRORS:
            break
    return errors


async def publish_project(
    db: WriteDb, *, payments: InternalClient, requester_id: str, project_id: str
) -> ProjectRead:
    row = await load_project(db, requester_id=requester_id, project_id=project_id, lock="change")
    if row.status != "draft":
        raise InvalidState(f"Only a draft can be published; this project is {row.status}.")
    await training.check_publish(
        db, project_id=row.id, kind=row.kind, min_training_answers=row.min_training_answers
    )
    # One row changes: the tasks were uploaded with all their slots open (a draft's are
    # unclaimable because the project is not published) and inherit the project's expiry, so
    # publishing a million tasks rewrites none of them (bench/RESULTS.md, proposal 7). A draft's
    # open slots are its slots: nothing claims, returns or approves in a draft.
    stats = (await repository.project_stats(db, [row.id]))[row.id]
    updated = await repository.update_project(
        db,
        project_id=row.id,
        values={
            "status": "published",
            "published_at": func.now(),
            "tasks_expire_at": repository.TASKS_EXPIRE_AT_ON_PUBLISH,
        },
    )
    amount = stats.open_slots * row.slot_cents  # the highest tier's reward + fee per slot
    if row.min_hourly_rate_cents is not None:
        # The floor's worst case (services/tasks/pay_floor) is held with the slots.
        amount += await pay_floor.open_floor(
            db,
            project_id=row.id,
            requester_id=row.requester_id,
            min_hourly_rate_cents=row.min_hourly_rate_cents,
            reward_cents=row.reward_cents,
            duration_seconds=row.assignment_duration_seconds,
            slots=stats.open_slots,
        )
        stats = (await repository.project_stats(db, [row.id]))[row.id]
    if row.pay_model == "hourly":
        amount += await _open_hourly_budget(db, row)
        stats = (await repository.project_stats(db, [row.id]))[row.id]
    if amount:
        # Last step: a 402 or 503 here rolls back every row above.
        await reserve(payments, row, amount, key=f"publish:{row.id}")
    return to_read(updated, stats)


def hourly_reservation_cents(row: ProjectRow) -> int:
    """What publishing an hourly project holds: budget_hours x hourly_rate (rounded up to the
    cent) plus the fee on it by the per-answer rule (shared/fees.py, the project's
    assignments_per_task). Approvals pay each timesheet rounded down, so their sum never
    exceeds the budget's pay."""
    assert row.budget_seconds is not None and row.hourly_rate_cents is not None
    # With pay tiers, every second may be paid at the highest tier's rate (level 3's entry).
    rate = max(row.level_hourly_rate_cents or [row.hourly_rate_cents])
    pay = -(-row.budget_seconds * rate // 3600)
    return pay + fee_for(pay, assignments_per_task=row.assignments_per_task)


async def _open_hourly_budget(db: WriteDb, row: ProjectRow) -> int:
    """The project's budget counter (shared/models/hourly.py), written with the publish; returns
    the cents to reserve for it."""
    assert row.budget_seconds is not None
    amount = hourly_reservation_cents(row)
    await repository.insert_hourly_budget(
        db, project_id=row.id, budget_seconds=row.budget_seconds, reserved_cents=amount
    )
    return amount


async def pause_project(db: WriteDb, *, requester_id: str, project_id: str) -> ProjectRead:
    return await _move(
        db, requester_id=requester_id, project_id=project_id, source="published", target="paused"
    )


async def resume_project(db: WriteDb, *, requester_id: str, project_id: str) -> ProjectRead:
    return await _move(
        db, requester_id=requester_id, project_id=project_id, source="paused", target="published"
    )


async def _move(
    db: WriteDb, *, requester_id: str, project_id: str, source: str, target: str
) -> ProjectRead:
    row = await load_project(db, requester_id=requester_id, project_id=project_id, lock="change")
    if row.status != source:
        raise InvalidState(
            f"Only a {source} project can become {target}; this one is {row.status}."
        )
    if target == "paused" and row.pay_model == "hourly":
        # No work can be taken while paused, so no time is paid: the open sessions end now
        # (workers open new ones after the resume). Wall clock, as close: a session's end is
        # never before its last activity.
        await end_project_sessions(db, project_id=row.id, now=utcnow(), reason="project_paused")
    updated = await repository.update_project(db, project_id=row.id, values={"status": target})
    return await read_project(db, updated)


def _summary(errors: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
