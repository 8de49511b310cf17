"""Expire: accepted assignments past their deadline become `expired` (the timers'
`assignment_deadlines` sweep) and their slots come back, or, in a closed project or of an
expired task, their money is released (messages.release_message, through
slots.give_back_slots).

One path, set-based: a batch is one statement plus the slots' return, in the caller's
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tasks.lifecycle.slots import SlotReturn, give_back_slots
from shared.database import WriteDb, as_rows


@dataclass(frozen=True, slots=True)
class Expired:
    id: str
    task_id: str
    project_id: str


# Overdue accepted assignments (at least `$2` seconds past the deadline), oldest deadline first,
# skipping rows a submit or return holds right now (it decides them);
# ix_assignments_deadline_accepted serves the scan. The status is re-checked on the locked row,
# so an assignment expires once whoever runs this concurrently.
_EXPIRE_OVERDUE = """
WITH overdue AS (
    SELECT id FROM assignments
    WHERE status = 'accepted' AND deadline <= now() - make_interval(secs => $2)
    ORDER BY deadline
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE assignments a SET status = 'expired', ended_at = now()
FROM overdue WHERE a.id = overdue.id AND a.status = 'accepted'
RETURNING a.id, a.task_id, a.project_id
"""


async def expire_overdue_assignments(db: WriteDb, limit: int, *, grace_seconds: float = 0.0) -> int:
    """Accepted assignments past their deadline (by `grace_seconds`) become `expired` and their
    slots come back (or their money is released). Returns how many expired.

    Run it in a transaction of its own; rows a concurrent submit or return holds are left for
    the next run.
    """
    rows = as_rows(Expired, await db.fetch(_EXPIRE_OVERDUE, limit, grace_seconds))
    await give_back_slots(
        db,
        [
            SlotReturn(
                task_id=r.task_id, project_id=r.project_id, release_key=f"release:slot:{r.id}"
            )
            for r in rows
        ],
    )
    return len(rows)
