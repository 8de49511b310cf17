"""Payments settings (env prefix PAYMENTS_): fee rates, limits and the test payout provider."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", frozen=True)

    # The fee rule's rates (shared/fees.py reads these four names).
    fee_rate_percent: int = Field(default=20, ge=0, le=100)
    large_batch_fee_rate_percent: int = Field(default=40, ge=0, le=100)
    large_batch_threshold: int = Field(default=10, ge=1, le=100)
    min_fee_cents: int = Field(default=1, ge=0)

    # Deposits through the built-in test payment provider: 0.01 .. 100000.00.
    max_deposit_cents: int = Field(default=10_000_000, ge=1)
    min_withdrawal_cents: int = Field(default=100, ge=1)

    # The built-in test payout provider pays a pending withdrawal this long after it was asked
    # for; the runner looks for due withdrawals every `payout_poll_seconds`.
    payout_delay_seconds: float = Field(default=1.0, ge=0, le=86_400)
    payout_poll_seconds: float = Field(default=0.5, gt=0, le=3_600)
    payout_runner_enabled: bool = True

    # Platform-side ledger accounts (fee revenue, payouts in flight, the outside world) are split
    # into this many rows, so concurrent payouts of different requesters do not queue on one row
    # lock; their balances are the sums over the shards.
    platform_account_shards: int = Field(default=8, ge=1, le=64)

    # The ledger check (`GET /internal/ledger/check`: legs sum to zero, no negative balance,
    # caches and holds agree) runs this often in the background and sets the
    # marketplace_ledger_check_* gauges; 0 turns it off. It reads every ledger entry, so with
    # N replicas at most one runs it at a time (an advisory lock) and each runs it once per
    # interval: keep it minutes, not seconds, on a large ledger.
    ledger_check_interval_seconds: float = Field(default=300.0, ge=0, le=86_400)
