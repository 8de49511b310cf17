"""SQL for qualification attempts (and requests, which are submitted attempts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.workers import QualificationAttempt, QualificationType

_A = QualificationAttempt
_COLS = (
    _A.id,
    _A.qualification_type_id,
    _A.worker_id,
    _A.status,
    _A.questions,
    _A.answer_key,
    _A.answers,
    _A.points,
    _A.max_points,
    _A.value,
    _A.reason,
    _A.started_at,
    _A.deadline,
    _A.submitted_at,
    _A.reviewed_at,
)


async def lock_worker_type(session: AsyncSession, *, type_id: str, worker_id: str) -> None:
    """Serialize attempt starts of one worker on one type for the rest of the transaction, so the
    retake rules are decided on what the previous start committed (the partial unique index
    uq_qualification_attempts_live stays the last line of defence)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"qualification-attempt:{type_id}:{worker_id}"},
    )


async def expire_overdue(
    session: AsyncSession, *, type_id: str, worker_id: str, now: datetime
) -> None:
    stmt = (
        update(_A)
        .where(
            _A.qualification_type_id == type_id,
            _A.worker_id == worker_id,
            _A.status == "started",
            _A.deadline <= now,
        )
        .values(status="expired")
    )
    await session.execute(stmt)


async def last_attempt(session: AsyncSession, *, type_id: str, worker_id: str) -> Row | None:
    stmt = (
        select(*_COLS)
        .where(_A.worker_id == worker_id, _A.qualification_type_id == type_id)
        .order_by(_A.started_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).first()


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> Row | None:
    """None when the worker already has a live attempt on this type (the partial unique index)."""
    stmt = (
        pg_insert(_A)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[_A.qualification_type_id, _A.worker_id],
            # Literal SQL, not bound values: with parameters Postgres cannot match the partial
            # index once it switches to a generic plan (after five executions).
            index_where=text("status IN ('started', 'pending')"),
        )
        .returning(*_COLS)
    )
    return (await session.execute(stmt)).first()


async def get_worker_attempt(
    session: AsyncSession, *, attempt_id: str, worker_id: str, for_update: bool = False
) -> Row | None:
    stmt = select(*_COLS).where(_A.id == attempt_id, _A.worker_id == worker_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


async def get_owner_request(
    session: AsyncSession, *, request_id: str, owner_id: str, for_update: bool = False
) -> Row | None:
    stmt = (
        select(*_COLS)
        .join(QualificationType, QualificationType.id == _A.qualification_type_id)
        .where(_A.id == request_id, QualificationType.owner_id == owner_id)
    )
    if for_update:
        stmt = stmt.with_for_update(of=_A)
    return (await session.execute(stmt)).first()


async def update_attempt(session: AsyncSession, attempt_id: str, values: dict[str, Any]) -> Row:
    stmt = update(_A).where(_A.id == attempt_id).values(**values).returning(*_COLS)
    return (await session.execute(stmt)).one()


async def list_requests(
    session: AsyncSession, *, type_id: str, status: str, before_id: str | None, limit: int
) -> Sequence[Row]:
    stmt = (
        select(*_COLS)
        .where(_A.qualification_type_id == type_id, _A.status == status)
        .order_by(_A.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(_A.id < before_id)
    return (await session.execute(stmt)).all()
