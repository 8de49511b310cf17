"""Close: a project stops for good (published, paused or draft → closed). No new accepts; the
money of slots nobody holds goes back now (one release message, `release:close:{project}`,
messages.release_message, committed with the close; the outbox delivers it), and in-flight
assignments either get paid or give their slot's money back when they end (slots.py).

One path, in the request's transaction: the project row locked `FOR UPDATE`, which also waits
out the queue side's `FOR KEY SHARE` (a slot being given back), so no slot can reopen in a
project whose unused money close is releasing; the open slots zeroed and released (a draft
never reserved money: its slots simply stop existing); the status written. The response is the
project as the projects service shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, update

from services.tasks.clock import utcnow
from services.tasks.lifecycle.messages import enqueue_many, release_message
from services.tasks.pay_floor import service as pay_floor
from services.tasks.projects import service as projects
from services.tasks.projects.repository import ProjectRow
from services.tasks.projects.schemas import ProjectRead
from services.tasks.sessions.service import end_project_sessions
from services.tasks.timesheets.service import release_on_close
from shared.database import WriteDb, as_row
from shared.errors import InvalidState
from shared.models import Project, Task


@dataclass(frozen=True, slots=True)
class ReleasedSlots:
    requester_id: str
    slot_cents: int
    slots: int


async def close_project(db: WriteDb, *, requester_id: str, project_id: str) -> ProjectRead:
    """No new accepts; the money of slots nobody holds goes back now (through the outbox), and
    in-flight assignments either get paid or give their slot's money back when they end."""
    row = await projects.load_project(
        db, requester_id=requester_id, project_id=project_id, lock="close"
    )
    if row.status == "closed":
        raise InvalidState("This project is already closed.")
    if row.status == "draft":
        await db.execute(update(Task).where(Task.project_id == row.id).values(open_slots=0))
    else:
        await release_unused_slots(db, project_id=row.id)
        if row.pay_model == "hourly":
            await _close_hourly(db, row)
        # The pay floor settles its last answers once none is in flight (pay_floor/service.py).
        await pay_floor.project_closed(db, project_id=row.id)
    await db.execute(
        update(Project)
        .where(Project.id == row.id)
        .values(status="closed", closed_at=func.now(), updated_at=func.now())
    )
    return await projects.get_project(db, requester_id=requester_id, project_id=project_id)


async def _close_hourly(db: WriteDb, row: ProjectRow) -> None:
    """Every open work session ends now (`project_closed`; nothing accrues after), then the
    budget's money that no open timesheet can still claim goes back (services/tasks/
    timesheets). Wall-clock stamp: a session's end is never before its last activity."""
    await end_project_sessions(db, project_id=row.id, now=utcnow(), reason="project_closed")
    await release_on_close(
        db,
        project_id=row.id,
        requester_id=row.requester_id,
        assignments_per_task=row.assignments_per_task,
    )


_ZERO_OPEN_SLOTS = """
WITH freed AS (
    SELECT id, open_slots FROM tasks
    WHERE project_id = $1 AND open_slots > 0
    ORDER BY id
    FOR UPDATE
), zeroed AS (
    UPDATE tasks t SET open_slots = 0 FROM freed WHERE t.id = freed.id
    RETURNING freed.open_slots
)
SELECT p.requester_id, p.slot_cents,
       (SELECT coalesce(sum(open_slots), 0) FROM zeroed)::bigint AS slots
FROM projects p WHERE p.id = $1
"""


async def release_unused_slots(db: WriteDb, *, project_id: str) -> int:
    """No slot of the project is claimable any more; one release for all of their money.

    Call it with the project row locked `FOR UPDATE` and only for a project whose slots were
    reserved (published or paused). Returns the cents released.
    """
    row = as_row(ReleasedSlots, await db.fetchrow(_ZERO_OPEN_SLOTS, project_id))
    if row is None or row.slots == 0:
        return 0
    amount = int(row.slots) * row.slot_cents
    if amount:
        await enqueue_many(
            db,
            [
                release_message(
                    key=f"release:close:{project_id}",
                    requester_id=row.requester_id,
                    project_id=project_id,
                    amount_cents=amount,
                )
            ],
        )
    return amount
