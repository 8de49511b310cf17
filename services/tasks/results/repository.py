"""SQL for the results export: one row per task with its answers, read through a cursor (a
hand-tuned statement: JSON aggregated in Postgres, streamed; docs/architecture.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.database import SnapshotDb

# Inputs stay JSON text (they go out unchanged); answers come as one JSON array per task.
RESULTS_SQL = """
SELECT t.id, t.external_id, t.input::text AS input,
       coalesce((
           SELECT json_agg(json_build_object(
                      'assignment_id', a.id, 'worker_id', a.worker_id,
                      'answer', a.answer, 'status', a.status) ORDER BY a.id)
           FROM assignments a
           WHERE a.task_id = t.id AND a.status IN ('submitted', 'approved', 'rejected')
       ), '[]')::text AS answers
FROM tasks t
WHERE t.project_id = $1
ORDER BY t.id
"""


@dataclass(frozen=True, slots=True)
class ResultRow:
    id: str
    external_id: str | None
    input: str  # JSON text
    answers: str  # JSON text: [{assignment_id, worker_id, answer, status}, ...]


async def task_results(
    db: SnapshotDb, *, project_id: str, prefetch: int
) -> AsyncIterator[ResultRow]:
    """Every task of the project in upload order, `prefetch` rows per round trip.

    A server-side cursor, so memory stays flat for 100,000 tasks; it must run inside a
    transaction: a SnapshotDb's (read-only, repeatable read: one consistent snapshot).
    """
    async for record in db.cursor(RESULTS_SQL, project_id, prefetch=prefetch):
        yield ResultRow(**record)
