"""A task's lifetime ending (the timers' `task_lifetimes` sweep, or its owner setting its expiry
to now or the past: `expire_task_now`): an open task past its expiry stops being offered and
its open slots' money goes back to the requester; live assignments of
it end later as in a closed project (approval pays from the hold; return, expiry or rejection
releases the slot: `slots.give_back_slots` reopens nothing on an expired task).

A task's expiry is its own `expires_at` or, when that is NULL (uploaded before publish), its
project's `tasks_expire_at` (set by publish; NULL while a draft, whose tasks never expire).

An expired task may come back (its owner moves its expiry into the future: services/tasks/
task_changes), which raises its `reopened_count`; a task expires at most once per value, so
every release key of an expiry carries it (from the second life on) and names one event.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tasks.lifecycle.messages import enqueue_many, release_message
from shared.database import WriteDb, as_row, as_rows


@dataclass(frozen=True, slots=True)
class ExpiredTask:
    project_id: str
    open_slots: int
    requester_id: str
    slot_cents: int
    reopened_count: int


@dataclass(frozen=True, slots=True)
class ExpiredGroup:
    """The tasks of one project expired by one statement."""

    project_id: str
    requester_id: str
    slot_cents: int
    tasks: int
    slots: int
    first_task_id: str


_EXPIRE_TASK = """
WITH old AS (
    SELECT t.id, t.project_id, t.open_slots, coalesce(t.expires_at, p.tasks_expire_at) AS ends
    FROM tasks t JOIN projects p ON p.id = t.project_id
    WHERE t.id = $1 AND t.status = 'open' AND coalesce(t.expires_at, p.tasks_expire_at) <= now()
    FOR UPDATE OF t
), expired AS (
    UPDATE tasks t SET status = 'expired', open_slots = 0, expires_at = old.ends
    FROM old WHERE t.id = old.id
    RETURNING old.project_id, old.open_slots, t.reopened_count
)
SELECT e.project_id, e.open_slots, p.requester_id, p.slot_cents, e.reopened_count
FROM expired e JOIN projects p ON p.id = e.project_id
"""


async def release_expired_task(db: WriteDb, *, task_id: str) -> int:
    """One task: if it is open and past its lifetime, it expires and its open slots' money is
    released. Returns the cents released (0 if the task was not open and past its lifetime)."""
    row = as_row(ExpiredTask, await db.fetchrow(_EXPIRE_TASK, task_id))
    if row is None:
        return 0
    amount = row.open_slots * row.slot_cents
    if amount:
        await enqueue_many(
            db,
            [
                release_message(
                    key=f"release:task:{task_id}"
                    + (f":{row.reopened_count}" if row.reopened_count else ""),
                    requester_id=row.requester_id,
                    project_id=row.project_id,
                    amount_cents=amount,
                )
            ],
        )
    return amount


# Names one expiry of one task (alias `e`, with its `reopened_count`): its id, and from its
# second life on (an expiry moved into the future after it expired, services/tasks/
# task_changes) `:{reopened_count}`, so a group's release key stays unique when a reopened task
# is again the first of its group. Ids have one length, so `min()` still picks the first id.
_EXPIRY_EVENT = (
    "e.id || CASE WHEN e.reopened_count > 0 THEN ':' || e.reopened_count::text ELSE '' END"
)

# The oldest open tasks with their own expiry at least `$2` seconds past it, skipping rows
# someone holds (an accept claiming a slot, a close zeroing them: they are taken by the next
# batch), through ix_tasks_expires_open. FOR UPDATE returns the locked row's latest
# `open_slots`, and the status is re-checked on it, so each task expires and releases its money
# exactly once.
_EXPIRE_DUE_DATED_TASKS = f"""
WITH due AS (
    SELECT id, project_id, open_slots FROM tasks
    WHERE status = 'open' AND expires_at <= now() - make_interval(secs => $2)
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE tasks t SET status = 'expired', open_slots = 0
    FROM due WHERE t.id = due.id AND t.status = 'open'
    RETURNING due.id, due.project_id, due.open_slots, t.reopened_count
)
SELECT e.project_id, p.requester_id, p.slot_cents,
       count(*)::int AS tasks, sum(e.open_slots)::bigint AS slots,
       min({_EXPIRY_EVENT}) AS first_task_id
FROM expired e JOIN projects p ON p.id = e.project_id
GROUP BY e.project_id, p.requester_id, p.slot_cents
"""

# The open tasks that inherit their project's expiry (expires_at NULL), of projects at least
# `$2` seconds past `tasks_expire_at`. The due projects come first from ix_projects_tasks_expiry
# (the ones the sweep has not finished), locked FOR NO KEY UPDATE SKIP LOCKED: projects before
# tasks, the global lock order, and a project someone is changing or closing right now is left
# to the next batch. Then up to `$1` of their open tasks, SKIP LOCKED, from
# ix_tasks_inherited_expiry_open, probed per due project (a LATERAL: with `project_id = ANY
# (due ids)` the planner read the whole tasks table on every run once most open tasks inherit
# their expiry, ~50 ms a run under the bench's load even with no project due); each gets the
# project's expiry written as its own as it expires (its row is rewritten now anyway, at the
# end of its life). A project none of whose
# tasks is left open (in this statement's snapshot, apart from those expired here) is marked
# swept and leaves the index: no task can start inheriting its expiry again, since uploads into
# a live project carry their own. Nothing here waits for a lock, so it cannot deadlock.
_EXPIRE_DUE_INHERITING_TASKS = f"""
WITH due_projects AS (
    SELECT id, tasks_expire_at FROM projects
    WHERE tasks_expire_at <= now() - make_interval(secs => $2) AND tasks_expiry_swept_at IS NULL
    ORDER BY tasks_expire_at
    LIMIT $1
    FOR NO KEY UPDATE SKIP LOCKED
), due AS (
    SELECT t.id, t.project_id, t.open_slots
    FROM due_projects dp
    CROSS JOIN LATERAL (
        SELECT id, project_id, open_slots FROM tasks
        WHERE project_id = dp.id AND status = 'open' AND expires_at IS NULL
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) t
    LIMIT $1
), expired AS (
    UPDATE tasks t SET status = 'expired', open_slots = 0, expires_at = dp.tasks_expire_at
    FROM due JOIN due_projects dp ON dp.id = due.project_id
    WHERE t.id = due.id AND t.status = 'open'
    RETURNING due.id, due.project_id, due.open_slots, t.reopened_count
), swept AS (
    UPDATE projects p SET tasks_expiry_swept_at = now()
    FROM due_projects dp
    WHERE p.id = dp.id AND NOT EXISTS (
        SELECT 1 FROM tasks t
        WHERE t.project_id = dp.id AND t.status = 'open' AND t.expires_at IS NULL
          AND t.id NOT IN (SELECT id FROM expired)
    )
)
SELECT e.project_id, p.requester_id, p.slot_cents,
       count(*)::int AS tasks, sum(e.open_slots)::bigint AS slots,
       min({_EXPIRY_EVENT}) AS first_task_id
FROM expired e JOIN projects p ON p.id = e.project_id
GROUP BY e.project_id, p.requester_id, p.slot_cents
"""


_EXPIRE_NOW = """
UPDATE tasks SET status = 'expired', open_slots = 0, expires_at = now()
WHERE id = $1 AND status = 'open'
RETURNING open_slots
"""


async def expire_task_now(
    db: WriteDb,
    *,
    task_id: str,
    project_id: str,
    requester_id: str,
    slot_cents: int,
    open_slots: int,
    reopened_count: int,
    reserved: bool,
) -> int:
    """Its owner ends an open task's lifetime now (services/tasks/task_changes: an expiry set
    to now or the past). Call with the project row and then the task row locked, `open_slots`
    and `reopened_count` read under that lock. The task stops being offered and, when its
    project's slots were reserved (`reserved`: published or paused), their money is released
    under `release:expire:{task}:{reopened_count}`: a task expires at most once per
    `reopened_count`, so the key names this one event. Returns the cents released."""
    await db.execute(_EXPIRE_NOW, task_id)
    amount = open_slots * slot_cents if reserved else 0
    if amount:
        await enqueue_many(
            db,
            [
                release_message(
                    key=f"release:expire:{task_id}:{reopened_count}",
                    requester_id=requester_id,
                    project_id=project_id,
                    amount_cents=amount,
                )
            ],
        )
    return amount


async def expire_due_tasks(
    db: WriteDb, *, limit: int, grace_seconds: float = 0.0
) -> tuple[int, int]:
    """The lifetime timer for a batch of up to `limit` tasks: open tasks past their expiry (by
    `grace_seconds`) become `expired` and their open slots' money is released, one outbox
    message per project and statement. Tasks with their own expiry go first, then those
    inheriting their project's. Returns (tasks expired, cents released).

    The release key names the project and the group's first task, which expires only once, so
    the key is unique to this event and a replayed delivery moves money once.
    """
    groups = as_rows(ExpiredGroup, await db.fetch(_EXPIRE_DUE_DATED_TASKS, limit, grace_seconds))
    left = limit - sum(g.tasks for g in groups)
    if left > 0:
        groups += as_rows(
            ExpiredGroup, await db.fetch(_EXPIRE_DUE_INHERITING_TASKS, left, grace_seconds)
        )
    releases = [
        release_message(
            key=f"release:tasks:{g.project_id}:{g.first_task_id}",
            requester_id=g.requester_id,
            project_id=g.project_id,
            amount_cents=int(g.slots) * g.slot_cents,
        )
        for g in groups
        if g.slots and g.slot_cents
    ]
    await enqueue_many(db, releases)
    return sum(g.tasks for g in groups), sum(m.payload["amount_cents"] for m in releases)
