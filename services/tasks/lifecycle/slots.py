"""Where a task's slot goes when an assignment ends without pay, and the money that follows it.

Money is reserved per slot when tasks go live: `projects.slot_cents`, reward + fee, or with pay
tiers the highest tier's reward + fee (approval releases what the assignment's own tier leaves
over: approve.py). A slot is either open (claimable,
money held), held by a live assignment (money held), consumed by an approval (money paid), or
released (money back to the requester's available balance). These helpers keep that true:

- `give_back_slot(s)`: an assignment was returned, expired or rejected. The slot reopens for
  another worker with its money still held, unless nobody can claim it any more (project closed,
  task expired or completed): then its money is released through the outbox.
- `consume_slots`: approvals paid from the reservation use their slots up; a task whose slots
  are all approved is `completed`.
- close (close.py) releases every open slot's money at once; in-flight assignments end later
  through `give_back_slot` (released) or approval (paid).
- a task's lifetime ending (task_lifetime.py) releases its open slots' money.

A task's expiry is its own `expires_at` or, when that is NULL (uploaded before publish), its
project's `tasks_expire_at` (set by publish; NULL while a draft, whose tasks never expire).

Locks are taken in one global order (assignments, then projects, then tasks by id, then stats)
so bulk review, timers and close never deadlock each other. Giving a slot back share-locks its
project row (`FOR KEY SHARE`), which close's `FOR UPDATE` excludes: a slot is reopened either
before close counts the open slots (and close releases it) or after close committed (and it is
released here) — never reopened in a closed project with its money stuck.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from services.tasks.lifecycle.messages import enqueue_many, release_message
from shared.database import Writable, WriteDb, as_rows


@dataclass(frozen=True, slots=True)
class SlotReturn:
    """One slot coming back; `release_key` is the outbox key used if its money is released."""

    task_id: str
    project_id: str
    release_key: str


@dataclass(frozen=True, slots=True)
class LockedProject:
    id: str
    requester_id: str
    status: str
    slot_cents: int


async def give_back_slot(db: WriteDb, *, task_id: str, project_id: str, reason_key: str) -> None:
    """Reopen the slot of an assignment that ended unpaid, or release its money.

    `reason_key` is the payments key if the money is released; make it unique per assignment,
    e.g. `release:slot:{assignment_id}`.
    """
    await give_back_slots(
        db, [SlotReturn(task_id=task_id, project_id=project_id, release_key=reason_key)]
    )


_LOCK_PROJECTS = """
SELECT id, requester_id, status, slot_cents
FROM projects WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE
"""
_LOCK_TASKS = "SELECT id FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
_REOPEN = """
UPDATE tasks t SET open_slots = t.open_slots + w.n
FROM unnest($1::text[], $2::int[]) AS w(task_id, n), projects p
WHERE t.id = w.task_id AND t.project_id = ANY($3::text[]) AND p.id = t.project_id
  AND t.status = 'open' AND coalesce(t.expires_at, p.tasks_expire_at, 'infinity') > now()
RETURNING t.id
"""


def consume_slots_sql(consumed: str) -> str:
    """The consuming UPDATE over `consumed`, a FROM item aliased `c` with columns (task_id, n),
    so a caller can fold it into its own statement as a CTE (single approve does)."""
    return f"""
UPDATE tasks t
SET approved_slots = t.approved_slots + c.n,
    status = CASE
        WHEN t.status = 'open' AND t.approved_slots + c.n >= t.max_assignments THEN 'completed'
        ELSE t.status
    END
FROM {consumed}
WHERE t.id = c.task_id
"""


_CONSUME = consume_slots_sql("unnest($1::text[], $2::int[]) AS c(task_id, n)")


async def lock_for_slot_changes(
    db: WriteDb, *, project_ids: Sequence[str], task_ids: Sequence[str]
) -> dict[str, LockedProject]:
    """Take the locks of a batch of slot changes up front, in the global order: projects
    (`FOR KEY SHARE`, by id), then tasks (`FOR UPDATE`, by id). Returns the projects by id.

    A transaction that both gives slots back and consumes them (bulk review) calls this once
    with every project and task involved; a single task needs no ordering.
    """
    projects = {
        row.id: row
        for row in as_rows(LockedProject, await db.fetch(_LOCK_PROJECTS, sorted(set(project_ids))))
    }
    unique_tasks = sorted(set(task_ids))
    if len(unique_tasks) > 1:
        await db.execute(_LOCK_TASKS, unique_tasks)
    return projects


async def consume_slots(db: Writable, task_ids: Sequence[str], *, locked: bool = False) -> None:
    """Approved assignments (one entry per approval, paid from the reservation) use up their
    slots for good; a task whose slots are all approved is `completed`.

    Row-locked increments, so concurrent approvals of one task's assignments complete it
    exactly once whatever their order. `locked`: the caller already holds the task rows
    (`lock_for_slot_changes`). Several tasks need a transaction (the lock, then the update).
    """
    if not task_ids:
        return
    per_task = Counter(task_ids)
    ordered = sorted(per_task)
    if len(ordered) > 1 and not locked:
        await db.execute(_LOCK_TASKS, ordered)
    await db.execute(_CONSUME, ordered, [per_task[t] for t in ordered])


async def give_back_slots(
    db: WriteDb,
    returns: Sequence[SlotReturn],
    *,
    locked_projects: dict[str, LockedProject] | None = None,
) -> int:
    """`give_back_slot` for many assignments at once (bulk reject, expiry); returns cents
    released. `locked_projects`: what `lock_for_slot_changes` returned, when the caller already
    took the locks of a larger batch."""
    if not returns:
        return 0
    projects = locked_projects
    if projects is None:
        projects = await lock_for_slot_changes(
            db,
            project_ids=[r.project_id for r in returns],
            task_ids=[r.task_id for r in returns],
        )
    per_task = Counter(r.task_id for r in returns)
    task_ids = sorted(per_task)
    live_projects = [pid for pid, row in projects.items() if row.status != "closed"]
    reopened = await _reopen(
        db, task_ids=task_ids, counts=[per_task[t] for t in task_ids], live_projects=live_projects
    )
    releases = []
    for r in returns:
        project = projects[r.project_id]
        if r.task_id in reopened or not project.slot_cents:  # 0.00 training: nothing held
            continue
        releases.append(
            release_message(
                key=r.release_key,
                requester_id=project.requester_id,
                project_id=r.project_id,
                amount_cents=project.slot_cents,
            )
        )
    await enqueue_many(db, releases)
    return sum(m.payload["amount_cents"] for m in releases)


async def _reopen(
    db: WriteDb, *, task_ids: list[str], counts: list[int], live_projects: list[str]
) -> set[str]:
    """The tasks whose slots reopened (open, not expired, in a project that is not closed)."""
    return {task_id for (task_id,) in await db.fetch(_REOPEN, task_ids, counts, live_projects)}
