"""SQL for worker profiles. Reads fall back to the account when no profile row exists yet.

Core (plain CRUD, see docs/architecture.md); the stats read is shared.eligibility's hand-tuned
statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.workers.profiles.schemas import ProfileRow
from shared.database import Db, Writable, WriteDb, as_row
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


async def get_profile(db: Db, worker_id: str) -> ProfileRow | None:
    stmt = (
        select(*_PROFILE_COLS)
        .select_from(Account)
        .outerjoin(WorkerProfile, WorkerProfile.worker_id == Account.id)
        .where(Account.id == worker_id, Account.kind == "worker")
    )
    return as_row(ProfileRow, await db.fetchrow(stmt))


async def insert_profile(
    db: Writable,
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
    await db.execute(stmt)


async def ensure_profile(db: WriteDb, worker_id: str) -> bool:
    """Create the row from the account if missing; False when no such worker exists."""
    source = select(Account.id, Account.name, Account.country, Account.languages).where(
        Account.id == worker_id, Account.kind == "worker"
    )
    stmt = (
        pg_insert(WorkerProfile)
        .from_select(["worker_id", "display_name", "country", "languages"], source)
        .on_conflict_do_nothing()
    )
    await db.execute(stmt)
    exists = await db.fetchval(
        select(WorkerProfile.worker_id).where(WorkerProfile.worker_id == worker_id)
    )
    return exists is not None


async def update_profile(db: Writable, worker_id: str, changes: dict[str, Any]) -> None:
    stmt = (
        update(WorkerProfile)
        .where(WorkerProfile.worker_id == worker_id)
        .values(**changes, updated_at=func.now())
    )
    await db.execute(stmt)


async def get_stats(db: Db, worker_id: str) -> WorkerStatsCounts:
    return await fetch_worker_stats(db, worker_id)
