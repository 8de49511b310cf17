"""SQL for gold_stats: per (project, worker) gold tally and review counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.database import Db, Writable, as_row, as_rows


@dataclass(frozen=True, slots=True)
class OwnedProject:
    id: str
    min_gold_accuracy: int | None


@dataclass(frozen=True, slots=True)
class WorkerTally:
    worker_id: str
    answered: int
    correct: int
    submitted: int
    approved: int
    rejected: int
    updated_at: datetime


_LOCK_ROWS = """
SELECT 1 FROM gold_stats g
JOIN unnest($1::text[], $2::text[]) AS k(project_id, worker_id)
  ON g.project_id = k.project_id AND g.worker_id = k.worker_id
ORDER BY g.project_id, g.worker_id
FOR UPDATE OF g
"""
_RECORD_DECISIONS = """
UPDATE gold_stats g
SET approved = g.approved + d.approved, rejected = g.rejected + d.rejected, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::int[], $4::int[])
     AS d(project_id, worker_id, approved, rejected)
WHERE g.project_id = d.project_id AND g.worker_id = d.worker_id
"""


async def record_decisions(db: Writable, decisions: Sequence[tuple[str, str, int, int]]) -> None:
    """Add approved/rejected deltas; rows are locked in key order first when there are several,
    so two bulk reviews touching the same workers cannot deadlock (several rows: pass a
    WriteDb, the lock and the update are one transaction)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for project_id, worker_id, approved, rejected in decisions:
        entry = totals.setdefault((project_id, worker_id), [0, 0])
        entry[0] += approved
        entry[1] += rejected
    if not totals:
        return
    keys = sorted(totals)
    columns = (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [totals[k][0] for k in keys],
        [totals[k][1] for k in keys],
    )
    if len(keys) > 1:
        await db.execute(_LOCK_ROWS, columns[0], columns[1])
    await db.execute(_RECORD_DECISIONS, *columns)


async def get_owned_project(db: Db, *, project_id: str, requester_id: str) -> OwnedProject | None:
    return as_row(
        OwnedProject,
        await db.fetchrow(
            "SELECT id, min_gold_accuracy FROM projects WHERE id = $1 AND requester_id = $2",
            project_id,
            requester_id,
        ),
    )


_WORKERS_FIRST_PAGE = """
SELECT worker_id, answered, correct, submitted, approved, rejected, updated_at
FROM gold_stats WHERE project_id = $1
ORDER BY worker_id DESC LIMIT $2
"""
_WORKERS_NEXT_PAGE = """
SELECT worker_id, answered, correct, submitted, approved, rejected, updated_at
FROM gold_stats WHERE project_id = $1 AND worker_id < $3
ORDER BY worker_id DESC LIMIT $2
"""


async def list_project_workers(
    db: Db, *, project_id: str, before_worker_id: str | None, limit: int
) -> list[WorkerTally]:
    """Newest worker accounts first (ids are time-sortable): a stable order for cursors, unlike
    recent activity, which would move workers between pages while someone pages through."""
    if before_worker_id is None:
        return as_rows(WorkerTally, await db.fetch(_WORKERS_FIRST_PAGE, project_id, limit))
    return as_rows(
        WorkerTally, await db.fetch(_WORKERS_NEXT_PAGE, project_id, limit, before_worker_id)
    )
