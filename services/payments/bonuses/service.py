"""Bonuses: extra pay for one of the caller's assignments, plus the platform's fee.

Only for work done: the assignment must have been submitted (submitted, approved or rejected).
The fee is always the normal rate (shared/fees.py: bonuses ignore the large-batch rate).
"""

from __future__ import annotations

from services.payments.bonuses import repository
from services.payments.bonuses.schemas import BonusRead
from services.payments.ledger import service as ledger
from services.payments.reservations import service as reservations
from services.payments.settings import Settings
from shared.database import WriteDb
from shared.errors import InvalidState, NotFound
from shared.fees import bonus_fee_cents

BONUSABLE_STATUSES = frozenset({"submitted", "approved", "rejected"})


async def pay_bonus(
    db: WriteDb,
    *,
    requester_id: str,
    assignment_id: str,
    amount_cents: int,
    reason: str,
    settings: Settings,
) -> BonusRead:
    assignment = await repository.get_assignment(db, assignment_id)
    if assignment is None or assignment.requester_id != requester_id:
        raise NotFound("Assignment not found.")
    if assignment.status not in BONUSABLE_STATUSES:
        raise InvalidState(
            f"A bonus is for submitted work; this assignment is {assignment.status}."
        )
    fee = bonus_fee_cents(amount_cents, rates=settings)
    total = amount_cents + fee
    row, _ = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="bonus",
            requester_id=requester_id,
            worker_id=assignment.worker_id,
            project_id=assignment.project_id,
            task_id=assignment.task_id,
            assignment_id=assignment_id,
            amount_cents=amount_cents,
            fee_cents=fee,
            reference=f"assignment:{assignment_id}",
            details={"reason": reason},
        ),
    )
    # Hold row before ledger accounts: the lock order every hold-touching call follows.
    await reservations.count_spent(
        db, requester_id=requester_id, project_id=assignment.project_id, amount_cents=total
    )
    await ledger.move(
        db,
        transaction_id=row.id,
        kind="bonus",
        legs=[
            (ledger.requester_available(requester_id), -total),
            (ledger.worker_available(assignment.worker_id), amount_cents),
            (ledger.platform_revenue(ledger.pick_shard(settings.platform_account_shards)), fee),
        ],
    )
    return BonusRead(
        id=row.id,
        assignment_id=assignment_id,
        worker_id=assignment.worker_id,
        project_id=assignment.project_id,
        amount=amount_cents,
        fee=fee,
        reason=reason,
        created_at=row.created_at,
    )
