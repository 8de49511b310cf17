"""Reject: submitted → rejected with the requester's feedback; the slot reopens for another
worker, or, in a closed project or of an expired task, its money is released
(messages.release_message, through slots.give_back_slots); the worker's tally counts it.

One path (single and bulk alike): `decisions.decide_submitted`, then `give_back` of the
rejected rows' slots, in one transaction. Rejecting a rejected assignment answers 200 with it
unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.gold import service as gold
from services.tasks.lifecycle.assignment import assignment_read
from services.tasks.lifecycle.decisions import (
    ReviewRow,
    decide_submitted,
    locked_one,
    stats_deltas,
    wrong_state,
)
from services.tasks.lifecycle.slots import LockedProject, SlotReturn, give_back_slots
from shared.database import Writable, WriteDb, in_transaction


async def reject(
    db: Writable, *, requester_id: str, assignment_id: str, feedback: str
) -> AssignmentRead:
    async with in_transaction(db) as tx:
        rejected = await decide_submitted(
            tx,
            requester_id=requester_id,
            decision="rejected",
            ids=[assignment_id],
            feedbacks=[feedback],
        )
        if rejected:
            await give_back(tx, rejected)
            await gold.record_decisions(tx, stats_deltas(rejected=rejected))
            return assignment_read(rejected[0])
        current = await locked_one(tx, requester_id=requester_id, assignment_id=assignment_id)
        if current.status == "rejected":
            return assignment_read(current)
        raise wrong_state(current, "reject")


async def give_back(
    db: WriteDb,
    rejected: Sequence[ReviewRow],
    *,
    locked_projects: dict[str, LockedProject] | None = None,
) -> None:
    """The rejected assignments' slots come back (or their money is released)."""
    await give_back_slots(
        db,
        [
            SlotReturn(
                task_id=r.task_id, project_id=r.project_id, release_key=f"release:slot:{r.id}"
            )
            for r in rejected
        ],
        locked_projects=locked_projects,
    )
