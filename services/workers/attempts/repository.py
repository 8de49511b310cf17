"""SQL for qualification attempts (and requests, which are submitted attempts).

Core (CRUD, see docs/architecture.md), but for the advisory lock, a Postgres function call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.database import Db, Writable, WriteDb, as_row, as_rows
from shared.models.workers import QualificationAttempt, QualificationType
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: str
    qualification_type_id: str
    worker_id: str
    status: str
    questions: list[dict[str, Any]] | None
    answer_key: dict[str, Any] | None
    answers: dict[str, Any] | None
    points: int | None
    max_points: int | None
    value: int | None
    reason: str | None
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    reviewed_at: datetime | None


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


# Postgres-specific (a transaction-scoped advisory lock on a text key): SQL text, not Core.
_LOCK_WORKER_TYPE_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def lock_worker_type(db: WriteDb, *, type_id: str, worker_id: str) -> None:
    """Serialize attempt starts of one worker on one type for the rest of the transaction, so the
    retake rules are decided on what the previous start committed (the partial unique index
    uq_qualification_attempts_live stays the last line of defence)."""
    await db.execute(_LOCK_WORKER_TYPE_SQL, f"qualification-attempt:{type_id}:{worker_id}")


async def expire_overdue(db: Writable, *, type_id: str, worker_id: str, now: datetime) -> None:
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
    await db.execute(stmt)


async def last_attempt(db: Db, *, type_id: str, worker_id: str) -> AttemptRow | None:
    stmt = (
        select(*_COLS)
        .where(_A.worker_id == worker_id, _A.qualification_type_id == type_id)
        .order_by(_A.started_at.desc())
        .limit(1)
    )
    return as_row(AttemptRow, await db.fetchrow(stmt))


async def insert_attempt(db: Writable, values: dict[str, Any]) -> AttemptRow | None:
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
    return as_row(AttemptRow, await db.fetchrow(stmt))


async def get_worker_attempt(
    db: Db, *, attempt_id: str, worker_id: str, for_update: bool = False
) -> AttemptRow | None:
    """`for_update` locks the row: only on a WriteDb (the lock lasts until its commit)."""
    stmt = select(*_COLS).where(_A.id == attempt_id, _A.worker_id == worker_id)
    if for_update:
        stmt = stmt.with_for_update()
    return as_row(AttemptRow, await db.fetchrow(stmt))


async def get_owner_request(
    db: Db, *, request_id: str, owner_id: str, for_update: bool = False
) -> AttemptRow | None:
    """`for_update` locks the row: only on a WriteDb (the lock lasts until its commit)."""
    stmt = (
        select(*_COLS)
        .join(QualificationType, QualificationType.id == _A.qualification_type_id)
        .where(_A.id == request_id, QualificationType.owner_id == owner_id)
    )
    if for_update:
        stmt = stmt.with_for_update(of=_A)
    return as_row(AttemptRow, await db.fetchrow(stmt))


async def update_attempt(db: Writable, attempt_id: str, values: dict[str, Any]) -> AttemptRow:
    stmt = update(_A).where(_A.id == attempt_id).values(**values).returning(*_COLS)
    row = as_row(AttemptRow, await db.fetchrow(stmt))
    assert row is not None  # locked by the caller (for_update)
    return row


async def list_requests(
    db: Db, *, type_id: str, status: str, before_id: str | None, limit: int
) -> list[AttemptRow]:
    stmt = newest_first(
        select(*_COLS).where(_A.qualification_type_id == type_id, _A.status == status),
        _A.id,
        before_id=before_id,
        limit=limit,
    )
    return as_rows(AttemptRow, await db.fetch(stmt))
