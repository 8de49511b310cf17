"""SQL for worker profiles. Reads fall back to the account when no profile row exists yet."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import driver_connection
from shared.eligibility import WorkerStatsCounts, fetch_worker_stats
from shared.models import Account
from shared.models.workers import WorkerProfile

_has_profile = WorkerProfile.worker_id.is_not(None)
_PROFILE_COLS = (
    Account.id.label("worker_id"),
    func.coalesce(WorkerProfile.display_name, Account.name).label("display_name"),
    case((_has_profile, WorkerProfile.country), else_=Account.country).label("country"),
    func.coalesce(WorkerProfile.languages, Account.languages).label("languages"),
    func.coalesce(WorkerProfile.skills, literal_column("'{}'::text[]")).label("skills"),
    func.coalesce(WorkerProfile.bio, "").label("bio"),
    Account.created_at,
    func.coalesce(WorkerProfile.updated_at, Account.created_at).label("updated_at"),
)


async def get_profile(session: AsyncSession, worker_id: str) -> Row | None:
    stmt = (
        select(*_PROFILE_COLS)
        .select_from(Account)
        .outerjoin(WorkerProfile, WorkerProfile.worker_id == Account.id)
        .where(Account.id == worker_id, Account.kind == "worker")
    )
    return (await session.execute(stmt)).first()


async def insert_profile(
    session: AsyncSession,
    *,
    worker_id: str,
    display_name: str,
    country: str | None,
    languages: list[str],
) -> None:
    stmt = (
        pg_insert(WorkerProfile)
        .values(
            worker_id=worker_id, display_name=display_name, country=country, languages=languages
        )
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)


async def ensure_profile(session: AsyncSession, worker_id: str) -> bool:
    """Create the row from the account if missing; False when no such worker exists."""
    source = select(Account.id, Account.name, Account.country, Account.languages).where(
        Account.id == worker_id, Account.kind == "worker"
    )
    stmt = (
        pg_insert(WorkerProfile)
        .from_select(["worker_id", "display_name", "country", "languages"], source)
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)
    exists = await session.execute(
        select(WorkerProfile.worker_id).where(WorkerProfile.worker_id == worker_id)
    )
    return exists.first() is not None


async def update_profile(session: AsyncSession, worker_id: str, changes: dict[str, Any]) -> None:
    stmt = (
        update(WorkerProfile)
        .where(WorkerProfile.worker_id == worker_id)
        .values(**changes, updated_at=func.now())
    )
    await session.execute(stmt)


async def get_stats(session: AsyncSession, worker_id: str) -> WorkerStatsCounts:
    return await fetch_worker_stats(await driver_connection(session), worker_id)
