"""SQL for grants (worker_qualifications)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, case, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.ids import new_id
from shared.models.workers import QualificationType, WorkerQualification

_COLS = (
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
    session: AsyncSession, *, worker_id: str, type_id: str, value: int, now: datetime
) -> tuple[Row, bool]:
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
    row = (await session.execute(returning)).one()
    created = bool(row.inserted) or row.granted_at == now
    return row, created


async def get_grant(session: AsyncSession, *, worker_id: str, type_id: str) -> Row | None:
    stmt = select(*_COLS).where(
        WorkerQualification.worker_id == worker_id,
        WorkerQualification.qualification_type_id == type_id,
    )
    return (await session.execute(stmt)).first()


async def revoke_grant(
    session: AsyncSession, *, worker_id: str, type_id: str, reason: str | None, now: datetime
) -> Row | None:
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
    return (await session.execute(stmt)).first()


async def list_grants(
    session: AsyncSession, *, type_id: str, status: str, before_id: str | None, limit: int
) -> Sequence[Row]:
    stmt = (
        select(*_COLS, WorkerQualification.id)
        .where(
            WorkerQualification.qualification_type_id == type_id,
            WorkerQualification.status == status,
        )
        .order_by(WorkerQualification.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(WorkerQualification.id < before_id)
    return (await session.execute(stmt)).all()


async def list_worker_grants(
    session: AsyncSession, *, worker_id: str, before_type_id: str | None, limit: int
) -> Sequence[Row]:
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
        .order_by(WorkerQualification.qualification_type_id.desc())
        .limit(limit)
    )
    if before_type_id is not None:
        stmt = stmt.where(WorkerQualification.qualification_type_id < before_type_id)
    return (await session.execute(stmt)).all()
