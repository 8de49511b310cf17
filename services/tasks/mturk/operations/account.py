"""GetAccountBalance: the requester's balance in the payments service's ledger (the one
ledger: `GET /internal/requesters/{id}/balance`, what `GET /v1/balance` shows the requester).

AvailableBalance is `available` (free to reserve and spend on bonuses); OnHoldBalance is
`reserved` (held for HIT slots not yet paid or released).
"""

from __future__ import annotations

from typing import Any

from services.tasks.mturk import mapping
from services.tasks.mturk.operations.hits import payments_client
from services.tasks.mturk.registry import MTurkCall, mturk_operation


@mturk_operation("GetAccountBalance")
async def get_account_balance(call: MTurkCall) -> dict[str, Any]:
    balance = await payments_client(call).get(f"/internal/requesters/{call.requester_id}/balance")
    return {
        "AvailableBalance": _amount(balance["available"]),
        "OnHoldBalance": _amount(balance["reserved"]),
    }


def _amount(value: str) -> str:
    """The payments service's money string in MTurk's 2-decimal form."""
    return mapping.amount_from_cents(mapping.cents_from_amount(value, "balance"))
