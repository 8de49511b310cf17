"""Reject: submitted → rejected with the requester's feedback; the slot reopens for another
worker, or, in a closed project or of an expired task, its money is released
(messages.release_message, through slots.give_back_slots); the worker's tally counts it.

One path (single and bulk alike): `reject_submitted` (REJECT_SQL), then `give_back` of the
rejected rows' slots, in one transaction. Rejecting a rejected assignment answers 200 with it
unchanged.

The daily cap (fair review): of the rejections one requester gives one worker in one UTC day,
only the first `RejectionCap.counted_per_day` count toward the worker's standing; the rest are
flagged `standing_excluded` by the same statement (still rejected: unpaid, reviewable,
appealable). The statement adds the rejections to the (requester, worker, day) row of
`daily_rejection_counts` with ON CONFLICT DO UPDATE, which waits for and then builds on a
concurrent reject's committed count, so each rejection's place in the day is exact under any
concurrency. An overturn never gives a place back: the cap counts rejections given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from services.tasks.assignments.schemas import AssignmentRead
from services.tasks.gold import service as gold
from services.tasks.lifecycle.assignment import assignment_read
from services.tasks.lifecycle.decisions import (
    OVERRIDE_WINDOW_DAYS,
    REVIEW_ROWS,
    ReviewRow,
    locked_one,
    review_columns,
    stats_deltas,
    wrong_state,
)
from services.tasks.lifecycle.slots import LockedProject, SlotReturn, give_back_slots
from shared.database import Db, Writable, WriteDb, in_transaction


@dataclass(frozen=True, slots=True)
class RejectionCap:
    """Where a rejection falls: its UTC `day` (from the service's clock) and how many of one
    requester's rejections of one worker that day count (TASKS_REJECTIONS_COUNTED_PER_REQUESTER_
    PER_DAY)."""

    day: date
    counted_per_day: int

    @classmethod
    def at(cls, now: datetime, counted_per_day: int) -> RejectionCap:
        """The cap of the UTC day `now` falls in."""
        return cls(day=now.astimezone(UTC).date(), counted_per_day=counted_per_day)


# submitted -> rejected for any number of the requester's assignments, with the daily cap.
# `candidates` locks the rows still submitted (in id order, re-checked on the newest version
# after any wait, so of two concurrent rejects of one assignment one gets it); rows already
# excluded (training answers) take no place in the cap. `counted` adds each worker's new
# rejections to the day's row and returns the total after them, so the rejections before this
# statement are total - n and each row's place is that plus its rank. Rows past the cap are
# flagged in the same UPDATE that rejects them, so the stats trigger never counts them. The
# UPDATE needs no status check: `candidates` holds those rows locked as submitted. Tuned for the
# hot pool's generic plan: every read of assignments is a one-row probe of a unique key, (id) or
# (worker_id, id), over a marketplace's statistics (test_the_reject_statement_probes_assignments_
# by_key_only: 20,000 answers). The UPDATE repeats `a.id = ANY($1)` and joins on the worker too
# because on small tables the generic plan otherwise walked every submitted row
# (ix_assignments_auto_approve_submitted) or skip-scanned an index led by another column.
REJECT_SQL = f"""
WITH candidates AS (
    SELECT a.id, a.worker_id, a.standing_excluded AS excluded, d.feedback
    FROM unnest($1::text[], $2::text[]) AS d(id, feedback)
    JOIN assignments a ON a.id = d.id
    WHERE a.id = ANY($1::text[]) AND a.requester_id = $3 AND a.status = 'submitted'
    ORDER BY a.id
    FOR UPDATE OF a
), counting AS (
    SELECT id, worker_id, row_number() OVER (PARTITION BY worker_id ORDER BY id) AS rank
    FROM candidates WHERE NOT excluded
), per_worker AS (
    SELECT worker_id, count(*)::int AS n FROM counting GROUP BY worker_id
), counted AS (
    INSERT INTO daily_rejection_counts AS c (requester_id, worker_id, day, rejections)
    SELECT $3, worker_id, $4::date, n FROM per_worker ORDER BY worker_id
    ON CONFLICT (requester_id, worker_id, day)
    DO UPDATE SET rejections = c.rejections + EXCLUDED.rejections
    RETURNING c.worker_id, c.rejections
), beyond_cap AS (
    SELECT k.id
    FROM counting k JOIN per_worker w USING (worker_id) JOIN counted c USING (worker_id)
    WHERE c.rejections - w.n + k.rank > $5
)
UPDATE assignments a
SET status = 'rejected', feedback = k.feedback, reviewed_at = now(),
    standing_excluded = a.standing_excluded OR a.id IN (SELECT id FROM beyond_cap)
FROM candidates k
WHERE a.id = ANY($1::text[]) AND a.id = k.id AND a.worker_id = k.worker_id
RETURNING {review_columns("$6")}
"""


async def reject_submitted(
    db: Db,
    *,
    requester_id: str,
    ids: Sequence[str],
    feedbacks: Sequence[str | None],
    cap: RejectionCap,
) -> list[ReviewRow]:
    """Reject those of `ids` that are the requester's and submitted (the others are absent from
    the result), counting them against the day's cap."""
    return await REVIEW_ROWS.fetch(
        db,
        REJECT_SQL,
        list(ids),
        list(feedbacks),
        requester_id,
        cap.day,
        cap.counted_per_day,
        OVERRIDE_WINDOW_DAYS,
    )


async def reject(
    db: Writable, *, requester_id: str, assignment_id: str, feedback: str, cap: RejectionCap
) -> AssignmentRead:
    async with in_transaction(db) as tx:
        rejected = await reject_submitted(
            tx, requester_id=requester_id, ids=[assignment_id], feedbacks=[feedback], cap=cap
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
