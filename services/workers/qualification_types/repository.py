"""SQL for qualification types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Text, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.workers import QualificationType

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
)


async def insert_type(session: AsyncSession, values: dict[str, Any]) -> Row | None:
    """None when the owner already has a type of that name (case-insensitive)."""
    stmt = pg_insert(QualificationType).values(**values).on_conflict_do_nothing().returning(*_COLS)
    return (await session.execute(stmt)).first()


async def get_type(session: AsyncSession, type_id: str, *, for_update: bool = False) -> Row | None:
    stmt = select(*_COLS).where(QualificationType.id == type_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_types(
    session: AsyncSession,
    *,
    query: str | None,
    owner_id: str | None,
    before_id: str | None,
    limit: int,
) -> Sequence[Row]:
    """Active types (or all of one owner's), newest first; `query` matches a name substring
    (trigram index) or a whole keyword (GIN index)."""
    stmt = select(*_COLS).order_by(QualificationType.id.desc()).limit(limit)
    if owner_id is None:
        stmt = stmt.where(QualificationType.status == "active")
    else:
        stmt = stmt.where(QualificationType.owner_id == owner_id)
    if query:
        stmt = stmt.where(
            or_(
                QualificationType.name.ilike(f"%{_escape_like(query)}%"),
                QualificationType.keywords.op("@>")(literal([query.lower()], ARRAY(Text))),
            )
        )
    if before_id is not None:
        stmt = stmt.where(QualificationType.id < before_id)
    return (await session.execute(stmt)).all()


async def update_type(session: AsyncSession, type_id: str, changes: dict[str, Any]) -> Row:
    stmt = (
        update(QualificationType)
        .where(QualificationType.id == type_id)
        .values(**changes, updated_at=func.now())
        .returning(*_COLS)
    )
    return (await session.execute(stmt)).one()
