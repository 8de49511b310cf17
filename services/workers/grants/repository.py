"""SQL for grants (worker_qualifications) (Core: plain CRUD, see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.database import Db, Writable, as_row, as_rows
from shared.ids import new_id
from shared.models.workers import QualificationType, WorkerQualification
from shared.pagination import newest_first


@dataclass(frozen=True, slots=True)
class GrantRow:
    id: str
    qualification_type_id: str
    worker_id: str
    value: int
    status: str
    granted_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


@dataclass(frozen=True, slots=True)
class UpsertedGrantRow(GrantRow):
    inserted: bool  # xmax = 0: the row did not exist


@dataclass(frozen=True, slots=True)
class WorkerGrantRow:
    qualification_type_id: str
    name: str
    value: int
    granted_at: datetime
    updated_at: datetime


_COLS = (
    WorkerQualification.id,
    WorkerQualification.qualification_type_id,
    WorkerQualification.worker_id,
    WorkerQualification.value,
    WorkerQualification.status,
    WorkerQualification.granted_at,
    WorkerQualification.updated_at,
    WorkerQualification.revoked_at,
    WorkerQualification.revoke_reason,
)


async def upsert_grant(
    db: Writable, *, worker_id: str, type_id: str, value: int, now: datetime
) -> tuple[GrantRow, bool]:
    """Grant or change; returns (grant, created), created meaning it was not held before."""
    ins = pg_insert(WorkerQualification).values(
        worker_id=worker_id,
        qualification_type_id=type_id,
        id=new_id(),
        value=value,
        status="granted",
        granted_at=now,
        updated_at=now,
    )
    was_revoked = WorkerQualification.status == "revoked"
    stmt = ins.on_conflict_do_update(
        index_elements=[WorkerQualification.worker_id, WorkerQualification.qualification_type_id],
        set_={
            "value": ins.excluded.value,
            "status": "granted",
            "updated_at": ins.excluded.updated_at,
            # A grant that restarts after a revoke is a new grant: new listing key and time.
            "id": case((was_revoked, ins.excluded.id), else_=WorkerQualification.id),
            "granted_at": case(
                (was_revoked, ins.excluded.granted_at), else_=WorkerQualification.granted_at
            ),
            "revoked_at": None,
            "revoke_reason": None,
        },
    )
    # xmax = 0 only on a freshly inserted row; a grant restarted after a revoke carries this
    # call's `now` as granted_at. Either way the worker did not hold it before.
    returning = stmt.returning(*_COLS, literal_column("(xmax = 0)").label("inserted"))
    row = as_row(UpsertedGrantRow, await db.fetchrow(returning))
    assert row is not None  # an upsert always returns its row
    created = bool(row.inserted) or row.granted_at == now
    return row, created


async def get_grant(db: Db, *, worker_id: str, type_id: str) -> GrantRow | None:
    stmt = select(*_COLS).where(
        WorkerQualification.worker_id == worker_id,
        WorkerQualification.qualification_type_id == type_id,
    )
    return as_row(GrantRow, await db.fetchrow(stmt))


async def revoke_grant(
    db: Writable, *, worker_id: str, type_id: str, reason: str | None, now: datetime
) -> GrantRow | None:
    stmt = (
        update(WorkerQualification)
        .where(
            WorkerQualification.worker_id == worker_id,
            WorkerQualification.qualification_type_id == type_id,
            WorkerQualification.status == "granted",
        )
        .values(status="revoked", revoked_at=now, revoke_reason=reason, updated_at=now)
        .returning(*_COLS)
    )
    return as_row(GrantRow, await db.fetchrow(stmt))


async def list_grants(
    db: Db, *, type_id: str, status: str, before_id: str | None, limit: int
) -> list[GrantRow]:
    stmt = select(*_COLS).where(
        WorkerQualification.qualification_type_id == type_id,
        WorkerQualification.status == status,
    )
    stmt = newest_first(stmt, WorkerQualification.id, before_id=before_id, limit=limit)
    return as_rows(GrantRow, await db.fetch(stmt))


async def list_worker_grants(
    db: Db, *, worker_id: str, before_type_id: str | None, limit: int
) -> list[WorkerGrantRow]:
    stmt = (
        select(
            WorkerQualification.qualification_type_id,
            QualificationType.name,
            WorkerQualification.value,
            WorkerQualification.granted_at,
            WorkerQualification.updated_at,
        )
        .join(QualificationType, QualificationType.id == WorkerQualification.qualification_type_id)
        .where(WorkerQualification.worker_id == worker_id, WorkerQualification.status == "granted")
    )
    stmt = newest_first(
        stmt, WorkerQualification.qualification_type_id, before_id=before_type_id, limit=limit
    )
    return as_rows(WorkerGrantRow, await db.fetch(stmt))
