"""Return (give back): the holder gives an accepted task back; the slot reopens at once (even
past the deadline: the holder is done with it, so there is no reason to keep it locked until
the timer runs), or, in a closed project or of an expired task, its money is released (the
release message: messages.release_message, through slots.give_back_slot).

One path: the transition (`_RETURN`) and the slot's return, in one transaction.
"""

from __future__ import annotations

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.lifecycle.assignment import (
    ASSIGNMENT_COLUMNS,
    ASSIGNMENT_ROWS,
    AssignmentExpired,
    AssignmentNotFound,
    assignment_read,
    get_status_for_worker,
)
from services.tasks.lifecycle.slots import give_back_slot
from shared.database import Writable, WriteDb, in_transaction
from shared.errors import InvalidState

_RETURN = f"""
UPDATE assignments a SET status = 'returned', ended_at = now()
WHERE a.id = $1 AND a.worker_id = $2 AND a.status = 'accepted'
RETURNING {ASSIGNMENT_COLUMNS}
"""


async def return_assignment(db: Writable, *, worker_id: str, assignment_id: str) -> AssignmentRead:
    async with in_transaction(db) as tx:
        return await _return_assignment(tx, worker_id=worker_id, assignment_id=assignment_id)


async def _return_assignment(db: WriteDb, *, worker_id: str, assignment_id: str) -> AssignmentRead:
    row = await ASSIGNMENT_ROWS.fetchrow(db, _RETURN, assignment_id, worker_id)
    if row is None:
        found = await get_status_for_worker(db, assignment_id=assignment_id, worker_id=worker_id)
        if found is None:
            raise AssignmentNotFound("Assignment not found.")
        if found.status == "expired":
            raise AssignmentExpired("The deadline of this assignment has passed.")
        raise InvalidState(
            f"Only an accepted assignment can be returned; this one is {found.status}."
        )
    await give_back_slot(
        db, task_id=row.task_id, project_id=row.project_id, reason_key=f"release:slot:{row.id}"
    )
    return assignment_read(row)
