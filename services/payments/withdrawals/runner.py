"""The test payout provider's background loop, run inside the payments app's lifespan.

Each withdrawal is paid in its own database transaction, so one failure (a provider error, a
database restart) never undoes another's payment; a failed one stays pending and is retried on
the next poll. Any number of replicas may run this loop: SKIP LOCKED hands each due withdrawal
to exactly one of them.

The test provider answers at once, so it is called while the withdrawal's row is locked. A real
payout rail (slow, remote) would need a `sending` state committed before the call and the
provider's idempotency key (the withdrawal id) to make a retry after a crash safe.
"""

from __future__ import annotations

import asyncio
import logging

from services.payments.providers import PayoutProvider
from services.payments.settings import Settings
from services.payments.withdrawals import service
from shared.database import Database
from shared.errors import describe_error, is_database_outage

log = logging.getLogger("payments.payouts")


async def pay_due_withdrawals(
    database: Database,
    *,
    settings: Settings,
    provider: PayoutProvider,
    limit: int = 100,
) -> int:
    """Pay up to `limit` due withdrawals, each in its own transaction; how many were paid."""
    paid = 0
    while paid < limit:
        async with database.transaction() as db:
            done = await service.pay_next_due(db, settings=settings, provider=provider)
        if not done:
            break
        paid += 1
    return paid


async def run_payouts_forever(
    database: Database,
    *,
    settings: Settings,
    provider: PayoutProvider,
) -> None:
    while True:
        try:
            await pay_due_withdrawals(database, settings=settings, provider=provider)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_database_outage(exc):  # expected: one line, no traceback
                log.warning(
                    "paying due withdrawals failed, database unavailable: %s", describe_error(exc)
                )
            else:
                log.exception("paying due withdrawals failed; retrying on the next poll")
        await asyncio.sleep(settings.payout_poll_seconds)
