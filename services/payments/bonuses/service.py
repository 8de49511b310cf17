"""Bonuses: extra pay for one of the caller's assignments, plus the platform's fee.

Only for work done: the assignment must have been submitted (submitted, approved or rejected).
The fee is always the normal rate (shared/fees.py: bonuses ignore the large-batch rate).

A pay floor top-up (`POST /internal/top-ups`, services/tasks/pay_floor) is a bonus the platform
pays on the requester's behalf: a `bonus` ledger transaction (details `reason: "pay_floor"`)
under the settlement's key `topup:{assignment_id}`, acting once per key like every internal
call, drawn from the project's hold (`reserved`) or the requester's available balance.
"""

from __future__ import annotations

from services.payments.bonuses import repository
from services.payments.bonuses.schemas import BonusRead
from services.payments.ledger import service as ledger
from services.payments.reservations import service as reservations
from services.payments.reservations.schemas import LedgerTransactionRead, TopUpCreate
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
    key: str | None = None,
) -> BonusRead:
    """`key` (the internal call's, e.g. the MTurk door's SendBonus): the bonus is paid at most
    once per key; a repeated key with the same request answers the first bonus and moves
    nothing, with another request 409 `idempotency_key_reused` (ledger.record)."""
    assignment = await repository.get_assignment(db, assignment_id)
    if assignment is None or assignment.requester_id != requester_id:
        raise NotFound("Assignment not found.")
    if assignment.status not in BONUSABLE_STATUSES:
        raise InvalidState(
            f"A bonus is for submitted work; this assignment is {assignment.status}."
        )
    fee = bonus_fee_cents(amount_cents, rates=settings)
    total = amount_cents + fee
    row, acting = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="bonus",
            key=key,
            request_hash=None
            if key is None
            else ledger.request_hash(
                "bonus",
                {
                    "requester_id": requester_id,
                    "assignment_id": assignment_id,
                    "amount_cents": amount_cents,
                    "reason": reason,
                },
            ),
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
    if not acting:
        return _bonus_read(row)
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
    return _bonus_read(row)


def _bonus_read(row: ledger.TransactionRow) -> BonusRead:
    assert row.assignment_id is not None and row.worker_id is not None
    assert row.project_id is not None
    return BonusRead(
        id=row.id,
        assignment_id=row.assignment_id,
        worker_id=row.worker_id,
        project_id=row.project_id,
        amount=row.amount_cents,
        fee=row.fee_cents,
        reason=ledger.parse_details(row.details).get("reason", ""),
        created_at=row.created_at,
    )


async def pay_top_up(
    db: WriteDb, *, data: TopUpCreate, settings: Settings
) -> tuple[LedgerTransactionRead, bool]:
    """Pay one answer's pay floor top-up (plus fee). Returns (result, replayed).

    Lock order as every hold-touching call: the key (`ledger.record`), the hold row, then the
    ledger accounts. A `reserved` top-up larger than the hold is 409 reservation_exhausted
    (the settlement never asks for more than it reserved); an `available` one the requester
    cannot cover is 402. Either refusal moves nothing (the request rolls back, its key too).
    """
    row, acting = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="bonus",
            key=data.key,
            request_hash=ledger.request_hash("top_up", data.model_dump(mode="json")),
            requester_id=data.requester_id,
            worker_id=data.worker_id,
            project_id=data.project_id,
            task_id=data.task_id,
            assignment_id=data.assignment_id,
            amount_cents=data.amount_cents,
            fee_cents=data.fee_cents,
            reference=f"assignment:{data.assignment_id}",
            details={"reason": "pay_floor", "source": data.source},
        ),
    )
    if not acting:
        return reservations.transaction_read(row), True
    total = data.amount_cents + data.fee_cents
    hold = (data.requester_id, data.project_id)
    if data.source == "reserved":
        held = (await reservations.lock_holds(db, [hold])).get(hold, 0)
        if held < total:
            raise reservations.ReservationExhausted(
                f"The project's reservation holds {held} cents; this top-up needs {total}.",
                extra={"held_cents": held, "needed_cents": total},
            )
        await reservations.draw_holds(db, groups=[hold], drawn_cents=[total], spent_cents=[total])
        source = ledger.requester_reserved(data.requester_id)
    else:
        await reservations.count_spent(
            db, requester_id=data.requester_id, project_id=data.project_id, amount_cents=total
        )
        source = ledger.requester_available(data.requester_id)
    await ledger.move(
        db,
        transaction_id=row.id,
        kind="bonus",
        legs=[
            (source, -total),
            (ledger.worker_available(data.worker_id), data.amount_cents),
            (
                ledger.platform_revenue(ledger.pick_shard(settings.platform_account_shards)),
                data.fee_cents,
            ),
        ],
    )
    return reservations.transaction_read(row), False
