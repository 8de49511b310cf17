"""Auto-approve: submitted assignments whose `auto_approve_at` passed are approved exactly like a
manual approval (the timers' `auto_approvals` sweep): the slot is consumed, the worker's tally
counted and the payout (`pay:{assignment_id}`, from the reservation) enqueued, all in the
caller's transaction.

One path, set-based across requesters: one statement decides a batch (`_APPROVE_DUE_SUBMITTED`),
then approve.record_approvals, approve's general path, writes the effects and emits the payouts
(messages.payout_message).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tasks.lifecycle.approve import record_approvals
from shared.database import WriteDb, as_rows


@dataclass(frozen=True, slots=True)
class AutoApproved:
    id: str
    task_id: str
    project_id: str
    requester_id: str
    worker_id: str
    reward_cents: int
    fee_cents: int


# submitted -> approved for assignments whose auto_approve_at passed (by `$2` seconds), oldest
# first along ix_assignments_auto_approve_submitted. Exactly what a manual approve writes, with
# no feedback; the returned columns are what messages.PAYOUT needs.
_APPROVE_DUE_SUBMITTED = """
WITH due AS (
    SELECT id FROM assignments
    WHERE status = 'submitted' AND auto_approve_at <= now() - make_interval(secs => $2)
    ORDER BY auto_approve_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE assignments a SET status = 'approved', feedback = NULL, reviewed_at = now()
FROM due WHERE a.id = due.id AND a.status = 'submitted'
RETURNING a.id, a.task_id, a.project_id, a.requester_id, a.worker_id, a.reward_cents, a.fee_cents
"""


async def auto_approve_due(db: WriteDb, *, limit: int, grace_seconds: float) -> int:
    """Approve up to `limit` submitted assignments whose auto-approval time passed; returns how
    many."""
    approved = as_rows(AutoApproved, await db.fetch(_APPROVE_DUE_SUBMITTED, limit, grace_seconds))
    await record_approvals(db, approved)
    return len(approved)
