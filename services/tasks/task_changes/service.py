"""Changing one task after upload: more assignments, a new expiry, disposal.

Natively what MTurk's CreateAdditionalAssignmentsForHIT, UpdateExpirationForHIT and DeleteHIT
do (the door's operations in services/tasks/mturk/operations/hit_changes.py call these), on the
one slot model of services/tasks/lifecycle/slots.py: every open slot of a live project has its
reward + fee held at payments, so

- adding assignments to a claimable task opens that many slots and reserves their money (plus
  the pay floor's worst case) as the request's last step: a 402 rolls the whole change back;
- an expiry now or in the past expires the task at once: no new claim, its open slots' money
  released through the outbox; assignments in flight end as on any expired task (approval pays
  from the hold, a return, expiry or rejection releases the slot);
- an expiry in the future reopens an expired task: the slots that no live or approved
  assignment takes are opened again and their money reserved;
- disposal hides a finished task (expired, completed, or of a closed project, with no
  assignment in flight) from the task lists: no money is held for it any more, so none moves.

Each change locks the project row (`FOR NO KEY UPDATE`, as every other change of a project:
ordered against publish, upload and close) and then the task row, the global lock order.
Concurrent changes of one task therefore run one after the other and each sees what the
previous one did; accepts, returns and reviews meet them on the task row.

Release keys name the task's expiry event: `release:expire:{task}:{reopened_count}`. A task
expires at most once per `reopened_count` (only an expiry into the future after it expired
raises it), so a task that expires, is reopened and expires again releases twice, once per key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from services.tasks.lifecycle.task_lifetime import expire_task_now
from services.tasks.pay_floor import service as pay_floor
from services.tasks.projects.repository import ProjectRow
from services.tasks.projects.service import load_project, reserve
from services.tasks.task_changes import repository
from services.tasks.task_changes.repository import LockedTask
from services.tasks.task_changes.schemas import MAX_ASSIGNMENTS_PER_TASK
from services.tasks.tasks.schemas import TaskRead
from services.tasks.tasks.service import TaskNotFound, get_task
from shared.database import WriteDb
from shared.errors import InvalidState, ValidationFailed
from shared.http import InternalClient
from shared.ids import new_id

MAX_EXPIRY_AHEAD = timedelta(days=365)
LIVE_STATUSES = ("published", "paused")


class MaxAssignmentsExceeded(ValidationFailed):
    code = "max_assignments_exceeded"


def reservation_suffix(idempotency_key: str | None) -> str:
    """The part of a reservation's payments key that names this request: derived from the
    client's Idempotency-Key when there is one, so a retry after our commit failed (the
    reservation having acted) replays that reservation instead of holding the money twice."""
    if idempotency_key:
        return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return new_id()


async def lock_for_change(db: WriteDb, *, requester_id: str, task_id: str) -> LockedTask:
    """The requester's task, locked as every change here locks it (its project row, then the
    task row), for a caller that decides on its state before changing it in the same
    transaction (the MTurk door's own rules); 404 for a missing task or someone else's."""
    return (await _locked(db, requester_id=requester_id, task_id=task_id))[1]


async def _locked(db: WriteDb, *, requester_id: str, task_id: str) -> tuple[ProjectRow, LockedTask]:
    project_id = await repository.project_of_task(db, task_id=task_id, requester_id=requester_id)
    if project_id is None:
        raise TaskNotFound("Task not found.")
    project = await load_project(
        db, requester_id=requester_id, project_id=project_id, lock="change"
    )
    return project, await repository.lock_task(db, task_id=task_id)


def _refuse_disposed(task: LockedTask) -> None:
    if task.disposed_at is not None:
        raise InvalidState("This task was disposed of; it cannot change any more.")


async def _expire_now(db: WriteDb, project: ProjectRow, task: LockedTask) -> None:
    """The task stops being offered now; a live project gets its open slots' money back
    (lifecycle/task_lifetime.py, where every end of a task's lifetime is)."""
    await expire_task_now(
        db,
        task_id=task.id,
        project_id=project.id,
        requester_id=project.requester_id,
        slot_cents=project.slot_cents,
        open_slots=task.open_slots,
        reopened_count=task.reopened_count,
        reserved=project.status in LIVE_STATUSES,
    )


async def _reserve_slots(
    db: WriteDb, payments: InternalClient, project: ProjectRow, slots: int, *, key: str
) -> None:
    """Hold `slots` more slots' reward + fee (and the pay floor's worst case) for a live
    project; the caller's last step, so a 402 or 503 rolls its change back."""
    if slots <= 0 or project.status not in LIVE_STATUSES:
        return
    amount = slots * project.slot_cents
    amount += await pay_floor.reserve_for_new_slots(db, project_id=project.id, slots=slots)
    if amount:
        await reserve(payments, project, amount, key=key)


async def add_assignments(
    db: WriteDb,
    *,
    payments: InternalClient,
    requester_id: str,
    task_id: str,
    count: int,
    reservation_key: str,
) -> TaskRead:
    """`count` more assignments for the task (MTurk's CreateAdditionalAssignmentsForHIT).

    A claimable or completed task opens `count` slots (a completed one is open again) and, in a
    live project, reserves their money under `add-assignments:{task}:{reservation_key}`. An
    expired task only grows: its slots open, and their money is reserved, when its expiry moves
    into the future again. A task still `open` but past its expiry (the lifetime sweep has not
    reached it yet) is expired here first, as the sweep would."""
    project, task = await _locked(db, requester_id=requester_id, task_id=task_id)
    if project.status == "closed":
        raise InvalidState("A closed project's tasks take no more assignments.")
    _refuse_disposed(task)
    total = task.max_assignments + count
    if total > MAX_ASSIGNMENTS_PER_TASK:
        raise MaxAssignmentsExceeded(
            f"The task has {task.max_assignments} assignments; {count} more would make "
            f"{total}, over the maximum of {MAX_ASSIGNMENTS_PER_TASK}.",
            errors=[
                {
                    "loc": ["body", "count"],
                    "msg": f"at most {MAX_ASSIGNMENTS_PER_TASK - task.max_assignments} more",
                }
            ],
        )
    status = task.status
    if task.past_expiry and status == "open":
        await _expire_now(db, project, task)
        status = "expired"
    if status == "expired" or task.past_expiry:
        # A completed task past its expiry grows beyond its approvals: it is expired now.
        await repository.update_task(
            db, task_id=task.id, values={"max_assignments": total, "status": "expired"}
        )
    else:
        await repository.update_task(
            db,
            task_id=task.id,
            values={
                "max_assignments": total,
                "open_slots": task.open_slots + count,
                "status": "open",
            },
        )
        await _reserve_slots(
            db, payments, project, count, key=f"add-assignments:{task.id}:{reservation_key}"
        )
    return await get_task(db, requester_id=requester_id, task_id=task.id)


async def set_expiry(
    db: WriteDb,
    *,
    payments: InternalClient,
    requester_id: str,
    task_id: str,
    expires_at: datetime,
) -> TaskRead:
    """Move the task's expiry (MTurk's UpdateExpirationForHIT); now or in the past: expire now.

    An open task just takes the new time (the lifetime sweep acts on it). An expired task given
    a future time is reopened: `reopened_count` grows, the slots no live or approved assignment
    holds open again and, in a live project, their money is reserved under
    `reopen:{task}:{reopened_count}`. A completed task keeps its status and records the time,
    which decides whether additional assignments later reopen it. A closed project's tasks
    cannot be extended; expiring one is a no-op (nothing is claimable there anyway)."""
    project, task = await _locked(db, requester_id=requester_id, task_id=task_id)
    _refuse_disposed(task)
    if expires_at - task.now > MAX_EXPIRY_AHEAD:
        raise ValidationFailed(
            "An expiry may be at most 365 days ahead.",
            errors=[{"loc": ["body", "expires_at"], "msg": "at most 365 days ahead"}],
        )
    expire = expires_at <= task.now
    if project.status == "closed":
        if expire:
            return await get_task(db, requester_id=requester_id, task_id=task.id)
        raise InvalidState("A closed project's tasks cannot be extended.")
    if expire:
        if task.status == "open":
            await _expire_now(db, project, task)
        elif task.status == "completed" and not task.past_expiry:
            await repository.update_task(db, task_id=task.id, values={"expires_at": task.now})
        return await get_task(db, requester_id=requester_id, task_id=task.id)
    if task.status != "expired":
        await repository.update_task(db, task_id=task.id, values={"expires_at": expires_at})
        return await get_task(db, requester_id=requester_id, task_id=task.id)
    live = await repository.live_assignments(db, task_id=task.id)
    reopened = task.reopened_count + 1
    if task.approved_slots >= task.max_assignments:
        # Every slot was approved before it expired (additional assignments were never
        # opened): nothing to reopen, the task is complete.
        values = {"status": "completed", "expires_at": expires_at, "reopened_count": reopened}
        opened = 0
    else:
        opened = task.max_assignments - live - task.approved_slots
        values = {
            "status": "open",
            "open_slots": opened,
            "expires_at": expires_at,
            "reopened_count": reopened,
        }
    await repository.update_task(db, task_id=task.id, values=values)
    await _reserve_slots(db, payments, project, opened, key=f"reopen:{task.id}:{reopened}")
    return await get_task(db, requester_id=requester_id, task_id=task.id)


async def dispose(db: WriteDb, *, requester_id: str, task_id: str) -> TaskRead:
    """Hide a finished task from the task lists (MTurk's DeleteHIT). Allowed once nothing about
    it can change any more: it is not claimable (expired, completed, or its project closed) and
    no assignment of it is accepted or submitted. Its row, answers and ledger history stay; no
    money is held for it, so none moves. Final: a disposed task takes no more assignments,
    expiry changes or overrides of its rejected answers. Disposing again answers the task."""
    project, task = await _locked(db, requester_id=requester_id, task_id=task_id)
    if task.disposed_at is not None:
        return await get_task(db, requester_id=requester_id, task_id=task.id)
    if task.status == "open" and project.status != "closed":
        if not task.past_expiry:
            raise InvalidState(
                "Only a task that is no longer offered can be disposed of: expire it first "
                "(PATCH with an expires_at now or in the past) or close its project."
            )
        await _expire_now(db, project, task)
    live = await repository.live_assignments(db, task_id=task.id)
    if live:
        raise InvalidState(
            f"{live} assignment(s) of this task are still accepted or submitted; review them "
            "(or let them end) before disposing of it."
        )
    await repository.update_task(db, task_id=task.id, values={"disposed_at": task.now})
    return await get_task(db, requester_id=requester_id, task_id=task.id)
