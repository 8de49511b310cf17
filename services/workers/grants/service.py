"""Grants: the owner grants, changes and revokes; a worker lists its own, system ones included.

System qualifications are never stored: they are computed from the worker's stats and profile
on every read (shared/eligibility.py), so they cannot drift and cannot be granted by hand.
"""

from __future__ import annotations

from datetime import datetime

from services.workers.grants import repository
from services.workers.grants.repository import GrantRow
from services.workers.grants.schemas import GrantRead, GrantStatus, WorkerQualificationRead
from services.workers.profiles.service import WorkerNotFound, worker_exists
from services.workers.qualification_types.service import get_owned_type
from shared.database import Db, Writable, WriteDb
from shared.eligibility import SYSTEM_TYPE_NAMES, fetch_worker_facts
from shared.errors import NotFound
from shared.pagination import Page, PageParams


class GrantNotFound(NotFound):
    code = "qualification_not_granted"


def to_read(row: GrantRow) -> GrantRead:
    return GrantRead.model_validate(row, from_attributes=True)


async def grant(
    db: Writable, *, worker_id: str, type_id: str, value: int, now: datetime
) -> tuple[GrantRead, bool]:
    """Used by direct grants, scored tests, accepted requests and auto-grants alike."""
    row, created = await repository.upsert_grant(
        db, worker_id=worker_id, type_id=type_id, value=value, now=now
    )
    return to_read(row), created


async def set_grant(
    db: WriteDb, *, owner_id: str, type_id: str, worker_id: str, value: int, now: datetime
) -> tuple[GrantRead, bool]:
    await get_owned_type(db, type_id=type_id, owner_id=owner_id)
    if not await worker_exists(db, worker_id=worker_id):
        raise WorkerNotFound("Worker not found.")
    return await grant(db, worker_id=worker_id, type_id=type_id, value=value, now=now)


async def revoke_grant(
    db: WriteDb,
    *,
    owner_id: str,
    type_id: str,
    worker_id: str,
    reason: str | None,
    now: datetime,
) -> None:
    await get_owned_type(db, type_id=type_id, owner_id=owner_id)
    row = await repository.revoke_grant(
        db, worker_id=worker_id, type_id=type_id, reason=reason, now=now
    )
    if row is None:
        raise GrantNotFound("This worker does not hold this qualification.")


async def list_grants(
    db: Db, *, owner_id: str, type_id: str, status: GrantStatus, page: PageParams
) -> Page[GrantRead]:
    await get_owned_type(db, type_id=type_id, owner_id=owner_id)
    rows = await repository.list_grants(
        db, type_id=type_id, status=status, before_id=page.before, limit=page.fetch
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[to_read(r) for r in items], next_cursor=next_cursor)


async def list_my_qualifications(
    db: Db, *, worker_id: str, page: PageParams
) -> Page[WorkerQualificationRead]:
    """Granted ones and the system ones, one order (type id, descending) across both."""
    before = page.before
    rows = await repository.list_worker_grants(
        db, worker_id=worker_id, before_type_id=before, limit=page.fetch
    )
    merged = [
        WorkerQualificationRead(
            qualification_type_id=r.qualification_type_id,
            name=r.name,
            value=r.value,
            is_system=False,
            granted_at=r.granted_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ] + await _system_qualifications(db, worker_id)
    merged = [q for q in merged if before is None or q.qualification_type_id < before]
    merged.sort(key=lambda q: q.qualification_type_id, reverse=True)
    items, next_cursor = page.page(merged[: page.fetch], lambda q: [q.qualification_type_id])
    return Page(items=items, next_cursor=next_cursor)


async def _system_qualifications(db: Db, worker_id: str) -> list[WorkerQualificationRead]:
    facts = await fetch_worker_facts(
        db,
        worker_id=worker_id,
        requester_ids=(),
        qualification_type_ids=(),
    )
    out = []
    for type_id, name in SYSTEM_TYPE_NAMES.items():
        value = facts.value_of(type_id)
        if value is not None:
            out.append(
                WorkerQualificationRead(
                    qualification_type_id=type_id,
                    name=name,
                    value=value,
                    is_system=True,
                    granted_at=None,
                    updated_at=None,
                )
            )
    return out
