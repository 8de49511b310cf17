"""The fee rule and its rounding (shared/fees.py): pure functions, no database."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.settings import Settings
from shared.fees import (
    DEFAULT_FEE_RATES,
    bonus_fee_cents,
    fee_cents,
    fee_rate_percent,
    round_half_up_percent,
)


@dataclass(frozen=True)
class Rates:
    fee_rate_percent: int = 20
    large_batch_fee_rate_percent: int = 40
    large_batch_threshold: int = 10
    min_fee_cents: int = 1


@pytest.mark.parametrize(
    ("reward_cents", "assignments_per_task", "expected"),
    [
        (100, 1, 20),  # 20% of 1.00
        (50, 1, 10),
        (12, 1, 2),  # 2.4 cents rounds down
        (13, 1, 3),  # 2.6 cents rounds up
        (1, 1, 1),  # 0.2 cents: the 0.01 minimum
        (2, 1, 1),  # 0.4 cents: the minimum
        (3, 1, 1),  # 0.6 cents rounds up to the minimum anyway
        (0, 1, 0),  # no reward, no fee
        (100, 9, 20),  # below the large-batch threshold
        (100, 10, 40),  # 40% from 10 assignments per task
        (100, 100, 40),
        (11, 10, 4),  # 4.4 cents
        (12, 10, 5),  # 4.8 cents
        (1, 10, 1),  # 0.4 cents: the minimum
        (1_234_567, 1, 246_913),  # 246913.4
    ],
)
def test_fee_follows_the_contract(reward_cents: int, assignments_per_task: int, expected: int):
    assert fee_cents(reward_cents, assignments_per_task=assignments_per_task) == expected


def test_rounding_is_half_up_on_an_exact_half_cent() -> None:
    # With 10% an exact half cent occurs: 5 cents -> 0.5 -> 1; 15 -> 1.5 -> 2; 25 -> 2.5 -> 3.
    rates = Rates(fee_rate_percent=10, min_fee_cents=0)
    assert [fee_cents(c, rates=rates) for c in (5, 15, 25, 35)] == [1, 2, 3, 4]
    assert round_half_up_percent(5, 10) == 1
    assert round_half_up_percent(4, 10) == 0


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    percent=st.integers(min_value=0, max_value=100),
)
def test_integer_rounding_matches_exact_arithmetic(amount: int, percent: int) -> None:
    exact = Fraction(amount * percent, 100)
    expected = int(exact + Fraction(1, 2))  # floor(x + 1/2) for x >= 0: half up
    assert round_half_up_percent(amount, percent) == expected
    assert abs(Fraction(round_half_up_percent(amount, percent)) - exact) <= Fraction(1, 2)


@given(
    reward=st.integers(min_value=1, max_value=10**10),
    assignments=st.integers(min_value=1, max_value=100),
)
def test_fee_is_never_below_the_minimum_and_never_far_from_the_rate(
    reward: int, assignments: int
) -> None:
    fee = fee_cents(reward, assignments_per_task=assignments)
    percent = 40 if assignments >= 10 else 20
    assert fee >= 1
    assert fee == max(1, round_half_up_percent(reward, percent))
    assert fee <= max(1, reward * percent / 100 + 0.5)


def test_bonus_fee_is_always_the_normal_rate() -> None:
    assert bonus_fee_cents(100) == 20
    assert bonus_fee_cents(1) == 1
    assert bonus_fee_cents(1000) == fee_cents(1000, assignments_per_task=1)


def test_rates_come_from_settings() -> None:
    settings = Settings(
        database_url="postgresql://x@localhost/db",
        internal_token="a-long-enough-internal-token",
        fee_rate_percent=15,
        large_batch_fee_rate_percent=30,
        large_batch_threshold=5,
        min_fee_cents=2,
    )
    assert fee_cents(100, assignments_per_task=4, rates=settings) == 15
    assert fee_cents(100, assignments_per_task=5, rates=settings) == 30
    assert fee_cents(3, rates=settings) == 2  # the configured minimum
    assert fee_rate_percent(assignments_per_task=5, rates=settings) == 30
    # the defaults are the contract's numbers
    defaults = Settings(
        database_url="postgresql://x@localhost/db", internal_token="a-long-enough-internal-token"
    )
    for name in (
        "fee_rate_percent",
        "large_batch_fee_rate_percent",
        "large_batch_threshold",
        "min_fee_cents",
    ):
        assert getattr(defaults, name) == getattr(DEFAULT_FEE_RATES, name)


@pytest.mark.parametrize(("reward", "assignments"), [(-1, 1), (100, 0)])
def test_nonsense_inputs_are_refused(reward: int, assignments: int) -> None:
    with pytest.raises(ValueError):
        fee_cents(reward, assignments_per_task=assignments)
