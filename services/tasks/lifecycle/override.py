"""Override: rejected → approved within OVERRIDE_WINDOW_DAYS of the submission, paid now from
the requester's available balance (the rejected slot's reservation already went back to the
reopened slot, so this money must exist now: 402 leaves the assignment rejected).

One path: the transition (`_OVERRIDE`) on the locked row, the tally, then the payout
(messages.payout_message, `source` "available") sent to payments synchronously, the last step:
a 402 or an unreachable payments service raises and the caller's transaction (or savepoint)
rolls the transition back. Payments acts once per key, so a retry after a commit that failed
pays nothing twice.

Fair review: the approval counts toward the worker's standing from now on, also when the
rejection was beyond the daily cap (`standing_excluded` is cleared, except on a training
answer, which never counts), and the assignment's appeal, if any, is overturned in the same
statement, whether the requester answered the appeal (services/tasks/appeals) or approved the
assignment directly: the locked assignment row serialises the two, so the money moves once.
"""

from __future__ import annotations

from services.tasks.gold import service as gold
from services.tasks.lifecycle.decisions import (
    OVERRIDE_WINDOW_DAYS,
    REVIEW_COLUMNS,
    REVIEW_ROWS,
    ReviewRow,
    stats_deltas,
    wrong_state,
)
from services.tasks.lifecycle.messages import payout_message
from shared.database import WriteDb
from shared.errors import InvalidState
from shared.http import InternalClient

_OVERRIDE = f"""
WITH decided AS (
    UPDATE assignments a
    SET status = 'approved', feedback = coalesce($4, a.feedback), reviewed_at = now(),
        standing_excluded = a.standing_excluded
            AND EXISTS (SELECT 1 FROM projects p WHERE p.id = a.project_id AND p.kind = 'training')
    WHERE a.id = $1 AND a.requester_id = $2 AND a.status = 'rejected'
    RETURNING {REVIEW_COLUMNS}
), appeal AS (
    UPDATE appeals ap SET status = 'overturned', reason = $4, decided_at = now()
    FROM decided d WHERE ap.assignment_id = d.id AND ap.status <> 'overturned'
)
SELECT * FROM decided
"""

_TASK_DISPOSED = "SELECT disposed_at IS NOT NULL FROM tasks WHERE id = $1 FOR SHARE"


async def override(
    db: WriteDb,
    *,
    payments: InternalClient,
    current: ReviewRow,
    feedback: str | None,
    record_stats: bool = True,
    appealed: bool = False,
) -> ReviewRow:
    """`current`: the locked rejected row. Bulk review records the stats of all its items at
    the end instead (`record_stats=False`), keeping the global lock order. `appealed`: the
    worker's open appeal keeps the rejection open to an overturn past the override window."""
    if not (current.overridable or appealed):
        raise wrong_state(current, "approve")
    # A disposed task is final (MTurk: no approving a disposed HIT's rejected assignments).
    # Its row is share-locked after the assignment's (the global order), so a disposal
    # running now either committed first (refused here) or waits for this decision.
    if await db.fetchval(_TASK_DISPOSED, current.task_id):
        raise InvalidState("This assignment's task was disposed of; its decisions are final.")
    row = await REVIEW_ROWS.fetchrow(
        db, _OVERRIDE, current.id, current.requester_id, OVERRIDE_WINDOW_DAYS, feedback
    )
    assert row is not None  # the row is locked and was rejected
    if record_stats:
        await gold.record_decisions(db, stats_deltas(overridden=[row]))
    message = payout_message(row, source="available")
    await payments.post("/internal/payouts", json={**message.payload, "key": message.key})
    return row
