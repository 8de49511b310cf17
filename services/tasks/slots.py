"""Where a task's slot goes when an assignment ends without pay, and the money that follows it.

Money is reserved per slot (reward + fee) when tasks go live. A slot is either open (claimable,
money held), held by a live assignment (money held), consumed by an approval (money paid), or
released (money back to the requester's available balance). These helpers keep that true:

- `give_back_slot(s)`: an assignment was returned, expired or rejected. The slot reopens for
  another worker with its money still held, unless nobody can claim it any more (project closed,
  task expired or completed): then its money is released through the outbox.
- `consume_slots`: approvals paid from the reservation use their slots up; a task whose slots
  are all approved is `completed`.
- `release_unused_slots`: closing a project releases every open slot's money at once; in-flight
  assignments end later through `give_back_slot` (released) or approval (paid).
- `release_expired_task`: the lifetime timer ends a task and releases its open slots' money;
  `expire_due_tasks` does it for a batch of due tasks (the timers' sweep), one release per
  project per batch.

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

import asyncpg

from services.tasks.outbox.service import Message, enqueue, enqueue_many


@dataclass(frozen=True, slots=True)
class SlotReturn:
    """One slot coming back; `release_key` is the outbox key used if its money is released."""

    task_id: str
    project_id: str
    release_key: str


async def give_back_slot(
    conn: asyncpg.Connection, *, task_id: str, project_id: str, reason_key: str
) -> None:
    """Reopen the slot of an assignment that ended unpaid, or release its money.

    `reason_key` is the payments key if the money is released; make it unique per assignment,
    e.g. `release:slot:{assignment_id}`.
    """
    await give_back_slots(
        conn, [SlotReturn(task_id=task_id, project_id=project_id, release_key=reason_key)]
    )


_LOCK_PROJECTS = """
SELECT id, requester_id, status, reward_cents + fee_cents AS slot_cents
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
    conn: asyncpg.Connection, *, project_ids: Sequence[str], task_ids: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """Take the locks of a batch of slot changes up front, in the global order: projects
    (`FOR KEY SHARE`, by id), then tasks (`FOR UPDATE`, by id). Returns the projects by id.

    A transaction that both gives slots back and consumes them (bulk review) calls this once
    with every project and task involved; a single task needs no ordering.
    """
    projects = {
        row["id"]: row for row in await conn.fetch(_LOCK_PROJECTS, sorted(set(project_ids)))
    }
    unique_tasks = sorted(set(task_ids))
    if len(unique_tasks) > 1:
        await conn.execute(_LOCK_TASKS, unique_tasks)
    return projects


async def consume_slots(
    conn: asyncpg.Connection, task_ids: Sequence[str], *, locked: bool = False
) -> None:
    """Approved assignments (one entry per approval, paid from the reservation) use up their
    slots for good; a task whose slots are all approved is `completed`.

    Row-locked increments, so concurrent approvals of one task's assignments complete it
    exactly once whatever their order. `locked`: the caller already holds the task rows
    (`lock_for_slot_changes`).
    """
    if not task_ids:
        return
    per_task = Counter(task_ids)
    ordered = sorted(per_task)
    if len(ordered) > 1 and not locked:
        await conn.execute(_LOCK_TASKS, ordered)
    await conn.execute(_CONSUME, ordered, [per_task[t] for t in ordered])


async def give_back_slots(
    conn: asyncpg.Connection,
    returns: Sequence[SlotReturn],
    *,
    locked_projects: dict[str, asyncpg.Record] | None = None,
) -> int:
    """`give_back_slot` for many assignments at once (bulk reject, expiry); returns cents
    released. `locked_projects`: what `lock_for_slot_changes` returned, when the caller already
    took the locks of a larger batch."""
    if not returns:
        return 0
    projects = locked_projects
    if projects is None:
        projects = await lock_for_slot_changes(
            conn,
            project_ids=[r.project_id for r in returns],
            task_ids=[r.task_id for r in returns],
        )
    per_task = Counter(r.task_id for r in returns)
    task_ids = sorted(per_task)
    live_projects = [pid for pid, row in projects.items() if row["status"] != "closed"]
    reopened = {
        row["id"]
        for row in await conn.fetch(
            _REOPEN, task_ids, [per_task[t] for t in task_ids], live_projects
        )
    }
    releases = []
    for r in returns:
        if r.task_id in reopened:
            continue
        project = projects[r.project_id]
        releases.append(
            Message(
                kind="release",
                key=r.release_key,
                payload={
                    "requester_id": project["requester_id"],
                    "project_id": r.project_id,
                    "amount_cents": project["slot_cents"],
                },
            )
        )
    await enqueue_many(conn, releases)
    return sum(m.payload["amount_cents"] for m in releases)


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
SELECT p.requester_id, p.reward_cents + p.fee_cents AS slot_cents,
       (SELECT coalesce(sum(open_slots), 0) FROM zeroed)::bigint AS slots
FROM projects p WHERE p.id = $1
"""


async def release_unused_slots(conn: asyncpg.Connection, *, project_id: str) -> int:
    """Close: no slot of the project is claimable any more; one release for all of their money.

    Call it with the project row locked `FOR UPDATE` and only for a project whose slots were
    reserved (published or paused). Returns the cents released.
    """
    row = await conn.fetchrow(_ZERO_OPEN_SLOTS, project_id)
    if row is None or row["slots"] == 0:
        return 0
    amount = int(row["slots"]) * row["slot_cents"]
    if amount:
        await enqueue(
            conn,
            kind="release",
            key=f"release:close:{project_id}",
            payload={
                "requester_id": row["requester_id"],
                "project_id": project_id,
                "amount_cents": amount,
            },
        )
    return amount


_EXPIRE_TASK = """
WITH old AS (
    SELECT t.id, t.project_id, t.open_slots, coalesce(t.expires_at, p.tasks_expire_at) AS ends
    FROM tasks t JOIN projects p ON p.id = t.project_id
    WHERE t.id = $1 AND t.status = 'open' AND coalesce(t.expires_at, p.tasks_expire_at) <= now()
    FOR UPDATE OF t
), expired AS (
    UPDATE tasks t SET status = 'expired', open_slots = 0, expires_at = old.ends
    FROM old WHERE t.id = old.id
    RETURNING old.project_id, old.open_slots
)
SELECT e.project_id, e.open_slots, p.requester_id, p.reward_cents + p.fee_cents AS slot_cents
FROM expired e JOIN projects p ON p.id = e.project_id
"""


async def release_expired_task(conn: asyncpg.Connection, *, task_id: str) -> int:
    """The lifetime timer: an open task past its expiry stops being offered and its open
    slots' money goes back; live assignments end later like in a closed project. Returns the
    cents released (0 if the task was not open and past its lifetime)."""
    row = await conn.fetchrow(_EXPIRE_TASK, task_id)
    if row is None:
        return 0
    amount = row["open_slots"] * row["slot_cents"]
    if amount:
        await enqueue(
            conn,
            kind="release",
            key=f"release:task:{task_id}",
            payload={
                "requester_id": row["requester_id"],
                "project_id": row["project_id"],
                "amount_cents": amount,
            },
        )
    return amount


# The oldest open tasks with their own expiry at least `$2` seconds past it, skipping rows
# someone holds (an accept claiming a slot, a close zeroing them: they are taken by the next
# batch), through ix_tasks_expires_open. FOR UPDATE returns the locked row's latest
# `open_slots`, and the status is re-checked on it, so each task expires and releases its money
# exactly once.
_EXPIRE_DUE_DATED_TASKS = """
WITH due AS (
    SELECT id, project_id, open_slots FROM tasks
    WHERE status = 'open' AND expires_at <= now() - make_interval(secs => $2)
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE tasks t SET status = 'expired', open_slots = 0
    FROM due WHERE t.id = due.id AND t.status = 'open'
    RETURNING due.id, due.project_id, due.open_slots
)
SELECT e.project_id, p.requester_id, p.reward_cents + p.fee_cents AS slot_cents,
       count(*)::int AS tasks, sum(e.open_slots)::bigint AS slots, min(e.id) AS first_task_id
FROM expired e JOIN projects p ON p.id = e.project_id
GROUP BY e.project_id, p.requester_id, p.reward_cents, p.fee_cents
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
_EXPIRE_DUE_INHERITING_TASKS = """
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
    RETURNING due.id, due.project_id, due.open_slots
), swept AS (
    UPDATE projects p SET tasks_expiry_swept_at = now()
    FROM due_projects dp
    WHERE p.id = dp.id AND NOT EXISTS (
        SELECT 1 FROM tasks t
        WHERE t.project_id = dp.id AND t.status = 'open' AND t.expires_at IS NULL
          AND t.id NOT IN (SELECT id FROM expired)
    )
)
SELECT e.project_id, p.requester_id, p.reward_cents + p.fee_cents AS slot_cents,
       count(*)::int AS tasks, sum(e.open_slots)::bigint AS slots, min(e.id) AS first_task_id
FROM expired e JOIN projects p ON p.id = e.project_id
GROUP BY e.project_id, p.requester_id, p.reward_cents, p.fee_cents
"""


async def expire_due_tasks(
    conn: asyncpg.Connection, *, limit: int, grace_seconds: float = 0.0
) -> tuple[int, int]:
    """The lifetime timer for a batch of up to `limit` tasks: open tasks past their expiry (by
    `grace_seconds`) become `expired` and their open slots' money is released, one outbox
    message per project and statement. Tasks with their own expiry go first, then those
    inheriting their project's. Returns (tasks expired, cents released).

    Live assignments of those tasks end later as in a closed project: approval pays from the
    hold, return/expiry/rejection releases the slot (`give_back_slots` reopens nothing on an
    expired task). The release key names the project and the group's first task, which expires
    only once, so the key is unique to this event and a replayed delivery moves money once.
    """
    groups = list(await conn.fetch(_EXPIRE_DUE_DATED_TASKS, limit, grace_seconds))
    left = limit - sum(g["tasks"] for g in groups)
    if left > 0:
        groups += await conn.fetch(_EXPIRE_DUE_INHERITING_TASKS, left, grace_seconds)
    releases = [
        Message(
            kind="release",
            key=f"release:tasks:{g['project_id']}:{g['first_task_id']}",
            payload={
                "requester_id": g["requester_id"],
                "project_id": g["project_id"],
                "amount_cents": int(g["slots"]) * g["slot_cents"],
            },
        )
        for g in groups
        if g["slots"] and g["slot_cents"]
    ]
    await enqueue_many(conn, releases)
    return sum(g["tasks"] for g in groups), sum(m.payload["amount_cents"] for m in releases)
