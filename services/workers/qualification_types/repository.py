"""SQL for qualification types (Core: CRUD and an option-built search, see
docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.database import Db, Writable, WriteDb, as_row, as_rows
from shared.models.workers import QualificationType
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class QualificationTypeRow:
    id: str
    owner_id: str | None
    name: str
    description: str
    keywords: list[str]
    status: str
    is_system: bool
    test: dict[str, Any] | None
    answer_key: dict[str, Any] | None
    retry_delay_seconds: int | None
    auto_grant: bool
    auto_grant_value: int
    created_at: datetime
    updated_at: datetime
    mturk_test: str | None
    mturk_answer_key: str | None


_COLS = (
    QualificationType.id,
    QualificationType.owner_id,
    QualificationType.name,
    QualificationType.description,
    QualificationType.keywords,
    QualificationType.status,
    QualificationType.is_system,
    QualificationType.test,
    QualificationType.answer_key,
    QualificationType.retry_delay_seconds,
    QualificationType.auto_grant,
    QualificationType.auto_grant_value,
    QualificationType.created_at,
    QualificationType.updated_at,
    QualificationType.mturk_test,
    QualificationType.mturk_answer_key,
)


async def insert_type(db: Writable, values: dict[str, Any]) -> QualificationTypeRow | None:
    """None when the owner already has a type of that name (case-insensitive)."""
    stmt = pg_insert(QualificationType).values(**values).on_conflict_do_nothing().returning(*_COLS)
    return as_row(QualificationTypeRow, await db.fetchrow(stmt))


async def get_type(
    db: Db, type_id: str, *, for_update: bool = False
) -> QualificationTypeRow | None:
    """`for_update` locks the row: only on a WriteDb (the lock lasts until its commit)."""
    stmt = select(*_COLS).where(QualificationType.id == type_id)
    if for_update:
        stmt = stmt.with_for_update()
    return as_row(QualificationTypeRow, await db.fetchrow(stmt))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_types(
    db: Db,
    *,
    query: str | None,
    owner_id: str | None,
    before_id: str | None,
    limit: int,
    requestable_only: bool = False,
) -> list[QualificationTypeRow]:
    """Active types (or all of one owner's), newest first; `query` matches a name substring
    (trigram index) or a whole keyword (GIN index). `requestable_only`: types a worker can
    obtain by asking (a test or auto-granted: MTurk's IsRequestable)."""
    stmt = select(*_COLS)
    if owner_id is None:
        stmt = stmt.where(QualificationType.status == "active")
    else:
        stmt = stmt.where(QualificationType.owner_id == owner_id)
    if requestable_only:
        stmt = stmt.where(
            or_(QualificationType.test.is_not(None), QualificationType.auto_grant.is_(True))
        )
    if query:
        stmt = stmt.where(
            or_(
                QualificationType.name.ilike(f"%{_escape_like(query)}%"),
                QualificationType.keywords.op("@>")(literal([query.lower()], ARRAY(Text))),
            )
        )
    stmt = newest_first(stmt, QualificationType.id, before_id=before_id, limit=limit)
    return as_rows(QualificationTypeRow, await db.fetch(stmt))


async def update_type(db: WriteDb, type_id: str, changes: dict[str, Any]) -> QualificationTypeRow:
    stmt = (
        update(QualificationType)
        .where(QualificationType.id == type_id)
        .values(**changes, updated_at=func.now())
        .returning(*_COLS)
    )
    row = as_row(QualificationTypeRow, await db.fetchrow(stmt))
    assert row is not None  # locked by the caller (get_type(for_update=True))
    return row
