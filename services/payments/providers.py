"""Built-in test providers: where a real card processor and payout rail would plug in.

The test payment provider accepts every charge at once; the test payout provider is called by
the withdrawal runner in the background (withdrawals/runner.py), a short delay after the worker
asked, the way a real payout rail confirms later. Both return the provider's reference, which
the ledger keeps on the transaction.
"""

from __future__ import annotations

from typing import Protocol

from shared.ids import new_id


class PaymentProvider(Protocol):
    name: str

    async def charge(self, *, account_id: str, amount_cents: int) -> str:
        """Take money from the requester's card; the provider's reference, or raise."""
        ...


class PayoutProvider(Protocol):
    name: str

    async def send(self, *, worker_id: str, amount_cents: int, withdrawal_id: str) -> str:
        """Send money to the worker's bank; the provider's reference, or raise to retry later."""
        ...


class TestPaymentProvider:
    name = "test"

    async def charge(self, *, account_id: str, amount_cents: int) -> str:
        return f"testpay_{new_id()}"


class TestPayoutProvider:
    name = "test"

    async def send(self, *, worker_id: str, amount_cents: int, withdrawal_id: str) -> str:
        return f"testpayout_{new_id()}"
