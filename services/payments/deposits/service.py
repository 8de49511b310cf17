"""Deposits: the test payment provider charges, then the outside world pays into `available`."""

from __future__ import annotations

from services.payments.deposits.schemas import DepositRead
from services.payments.ledger import service as ledger
from services.payments.providers import PaymentProvider
from services.payments.settings import Settings
from shared.database import WriteDb
from shared.errors import ValidationFailed
from shared.money import format_cents


def check_amount(amount_cents: int, *, settings: Settings) -> None:
    """422 outside (0, max]: the limit is a setting, so it is checked here, not in the schema."""
    if not 0 < amount_cents <= settings.max_deposit_cents:
        message = f"must be more than 0.00 and at most {format_cents(settings.max_deposit_cents)}"
        raise ValidationFailed(
            f"amount: {message}", errors=[{"loc": ["body", "amount"], "msg": message}]
        )


async def deposit(
    db: WriteDb,
    *,
    requester_id: str,
    amount_cents: int,
    settings: Settings,
    provider: PaymentProvider,
) -> DepositRead:
    check_amount(amount_cents, settings=settings)
    reference = await provider.charge(account_id=requester_id, amount_cents=amount_cents)
    row, _ = await ledger.record(
        db,
        ledger.NewTransaction(
            kind="deposit",
            requester_id=requester_id,
            amount_cents=amount_cents,
            reference=reference,
            details={"provider": provider.name},
        ),
    )
    available = ledger.requester_available(requester_id)
    after = await ledger.move(
        db,
        transaction_id=row.id,
        kind="deposit",
        legs=[
            (ledger.external(ledger.pick_shard(settings.platform_account_shards)), -amount_cents),
            (available, amount_cents),
        ],
    )
    return DepositRead(
        id=row.id,
        amount=amount_cents,
        status="succeeded",
        provider=provider.name,
        provider_reference=reference,
        available=after[available.id],
        created_at=row.created_at,
    )
