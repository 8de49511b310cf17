"""The platform's fee rule, in one place for both services that need it.

The tasks service computes a project's `fee_per_assignment` with it when a project is created
(so publish can reserve `reward + fee` per slot); the payments service charges the same fee on
bonuses and checks it on payouts. Keeping one function means the two numbers cannot drift apart.

Rule (contract, "Money"): the platform takes `fee_rate_percent` (20%) of a reward or bonus, or
`large_batch_fee_rate_percent` (40%) of a reward when the project asks for
`large_batch_threshold` (10) or more assignments per task; never less than `min_fee_cents`
(0.01) on a positive amount. Bonuses always pay the normal rate (`assignments_per_task=1`).

Rounding: the exact fee `amount * percent / 100` is rounded to a whole cent **half up** (0.5
cent becomes 1 cent), computed in integers so no float ever touches money; then the minimum
applies. With the default 20% and 40% rates an exact half cent cannot occur (cents x 20 / 100
ends in .0/.2/.4/.6/.8), so half up only matters for other configured rates. A zero amount has
a zero fee: there is no share of nothing to take, and the minimum is for paid work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class FeeRates(Protocol):
    """Anything carrying the four rate settings (the payments `Settings` does)."""

    @property
    def fee_rate_percent(self) -> int: ...

    @property
    def large_batch_fee_rate_percent(self) -> int: ...

    @property
    def large_batch_threshold(self) -> int: ...

    @property
    def min_fee_cents(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DefaultFeeRates:
    """The contract's rates; used when a caller has no settings of its own to pass."""

    fee_rate_percent: int = 20
    large_batch_fee_rate_percent: int = 40
    large_batch_threshold: int = 10
    min_fee_cents: int = 1


DEFAULT_FEE_RATES = DefaultFeeRates()


def fee_rate_percent(*, assignments_per_task: int, rates: FeeRates = DEFAULT_FEE_RATES) -> int:
    """The percentage that applies to a reward of a project with this many assignments per task."""
    if assignments_per_task < 1:
        raise ValueError("assignments_per_task must be at least 1")
    if assignments_per_task >= rates.large_batch_threshold:
        return rates.large_batch_fee_rate_percent
    return rates.fee_rate_percent


def round_half_up_percent(amount_cents: int, percent: int) -> int:
    """`amount_cents * percent / 100` rounded to a whole cent, halves up, in integer arithmetic."""
    return (amount_cents * percent + 50) // 100


def fee_cents(
    reward_cents: int,
    *,
    assignments_per_task: int = 1,
    rates: FeeRates = DEFAULT_FEE_RATES,
) -> int:
    """The fee the requester pays on top of `reward_cents` (see the module docstring)."""
    if reward_cents < 0:
        raise ValueError("reward_cents must not be negative")
    percent = fee_rate_percent(assignments_per_task=assignments_per_task, rates=rates)
    if reward_cents == 0:
        return 0
    return max(rates.min_fee_cents, round_half_up_percent(reward_cents, percent))


def bonus_fee_cents(amount_cents: int, *, rates: FeeRates = DEFAULT_FEE_RATES) -> int:
    """Bonuses always pay the normal rate, whatever the project's batch size."""
    return fee_cents(amount_cents, assignments_per_task=1, rates=rates)
