from __future__ import annotations

from pydantic import BaseModel, Field


class LedgerCheck(BaseModel):
    """The contract's invariants, recomputed from the entries (amounts in integer cents).

    Lists name at most 100 offenders each; `ok` is true only when every list is empty and the
    totals agree.
    """

    ok: bool
    total_debits: int = Field(description="Sum of all debit legs (money out of accounts), cents.")
    total_credits: int = Field(description="Sum of all credit legs (money into accounts), cents.")
    entries: int
    accounts_negative: list[str] = Field(
        description="Ledger accounts other than the outside world whose entries sum below zero."
    )
    reserved_mismatch: list[str] = Field(
        description="Requesters whose reserved balance differs from the sum of their holds."
    )
    unbalanced_transactions: list[str] = Field(
        description="Transactions whose legs do not sum to 0."
    )
    balance_cache_mismatch: list[str] = Field(
        description="Accounts whose cached balance differs from the sum of their entries."
    )
    spent_mismatch: list[str] = Field(
        description="Requesters whose payouts and bonuses differ from their holds' `spent`."
    )
    payouts_in_flight_cents: int
    pending_withdrawals_cents: int
    assignments_paid_twice: list[str]
