"""SQL of the Label Studio export: the results rows with what LS shows of each answer (times),
read through a cursor like the results export (docs/architecture.md, "Writing SQL")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from shared.database import Db, WriteDb

_UTC = """to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# The results export's statement (services/tasks/results/repository.py) plus the gold answer
# and each answer's times (LS annotations carry created_at/updated_at/lead_time), and, with a
# finished aggregation run ($2; NULL matches nothing), the run's aggregate per task (a primary
# key probe). JSON is built in Postgres and streamed; inputs and gold answers stay JSON text.
LABEL_STUDIO_ROWS_SQL = f"""
SELECT t.id, t.external_id, t.input::text AS input, t.gold_answer::text AS gold_answer,
       {_UTC.format(col="t.created_at")} AS created_at,
       coalesce((
           SELECT json_agg(json_build_object(
                      'assignment_id', a.id, 'worker_id', a.worker_id,
                      'answer', a.answer, 'status', a.status,
                      'submitted_at', {_UTC.format(col="a.submitted_at")},
                      'reviewed_at', {_UTC.format(col="a.reviewed_at")},
                      'lead_time', extract(epoch FROM a.submitted_at - a.accepted_at)::float8
                  ) ORDER BY a.id)
           FROM assignments a
           WHERE a.task_id = t.id AND a.status IN ('submitted', 'approved', 'rejected')
       ), '[]')::text AS answers,
       r.answer::text AS aggregate_answer, r.confidence, r.agreement
FROM tasks t
LEFT JOIN aggregation_task_results r ON r.run_id = $2::text AND r.task_id = t.id
WHERE t.project_id = $1
ORDER BY t.id
"""

FIRST_INPUT_SQL = """
SELECT input FROM tasks WHERE project_id = $1 ORDER BY id LIMIT 1
"""

# A bounding_box project without labels takes any label string: its LS config lists the ones
# used, by workers and in gold answers (a bounded set: LS shows them as buttons).
BOX_LABELS_SQL = """
SELECT DISTINCT label FROM (
    SELECT box->>'label' AS label
    FROM assignments a, jsonb_array_elements(
        CASE WHEN jsonb_typeof(a.answer->'boxes') = 'array'
             THEN a.answer->'boxes' END) box
    WHERE a.project_id = $1 AND a.status IN ('submitted', 'approved', 'rejected')
    UNION ALL
    SELECT box->>'label'
    FROM tasks t, jsonb_array_elements(
        CASE WHEN jsonb_typeof(t.gold_answer->'boxes') = 'array'
             THEN t.gold_answer->'boxes' END) box
    WHERE t.project_id = $1 AND t.gold_answer IS NOT NULL
) labels
WHERE label IS NOT NULL
ORDER BY label
LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class LabelStudioRow:
    id: str
    external_id: str | None
    input: str  # JSON text
    gold_answer: str | None  # JSON text
    created_at: str  # RFC 3339 UTC
    answers: str  # JSON text: [{assignment_id, worker_id, answer, status, times...}, ...]
    aggregate_answer: str | None  # JSON text: the run's aggregate (None without a run or votes)
    confidence: float | None
    agreement: float | None


async def label_studio_rows(
    db: WriteDb, *, project_id: str, run_id: str | None, prefetch: int
) -> AsyncIterator[LabelStudioRow]:
    """Every task of the project in upload order through a server-side cursor (inside the
    caller's read-only repeatable-read transaction), `prefetch` rows per round trip."""
    async for record in db.cursor(LABEL_STUDIO_ROWS_SQL, project_id, run_id, prefetch=prefetch):
        yield LabelStudioRow(**record)


async def first_input(db: Db, *, project_id: str) -> dict[str, Any] | None:
    return await db.fetchval(FIRST_INPUT_SQL, project_id)


async def box_labels(db: Db, *, project_id: str, limit: int) -> list[str]:
    return [r["label"] for r in await db.fetch(BOX_LABELS_SQL, project_id, limit)]
