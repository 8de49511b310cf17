"""`shared.money.parse_money`, the one parser of money input, against a `Decimal` oracle.

The contract: money is a JSON string matching `^[0-9]+(\\.[0-9]{1,2})?$` (the whole string: no
surrounding whitespace, no line break, ASCII digits only), within the kit's bounds (at most
`MAX_MONEY_CHARS` characters, at most `MAX_CENTS`); then cents == Decimal(s) * 100 exactly.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.money import MAX_CENTS, MAX_MONEY_CHARS, Money, format_cents, parse_money

CONTRACT_PATTERN = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
ASCII_DIGITS = frozenset("0123456789")


def oracle(s: str) -> int | None:
    """Cents the contract gives `s`, or None when it must be refused; built on Decimal only."""
    if CONTRACT_PATTERN.fullmatch(s) is None or not set(s) <= ASCII_DIGITS | {"."}:
        return None
    if len(s) > MAX_MONEY_CHARS:
        return None
    hundredths = Decimal(s) * 100
    assert hundredths == hundredths.to_integral_value()
    cents = int(hundredths)
    return cents if cents <= MAX_CENTS else None


def outcome(value: Any) -> int | None:
    try:
        return parse_money(value)
    except ValueError:
        return None


# Characters a money parser can be fooled by: ASCII and unicode digits (Arabic-Indic, full-width,
# Devanagari, superscript, mathematical bold), separators, signs, exponents, underscores and
# every kind of whitespace and line break.
TRICKY = (
    "0123456789.,-+eE_ \t\n\r\x0b\x0c\x85\u2028\u2029\u00a0\u3000"
    "\u0660\u0665\u06f5\u0966\uff10\uff15\u00b2\U0001d7d3"
)
valid_amounts = st.from_regex(r"[0-9]{1,16}(\.[0-9]{1,2})?", fullmatch=True)
in_range_amounts = st.integers(min_value=0, max_value=MAX_CENTS).map(format_cents)
whitespace = st.sampled_from([" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\u00a0", "\u2028"])
decorated = st.tuples(
    st.one_of(st.just(""), whitespace),
    st.one_of(valid_amounts, in_range_amounts),
    st.one_of(st.just(""), whitespace),
).map("".join)
signed_or_exponent = st.tuples(
    st.sampled_from(["", "+", "-"]),
    st.one_of(valid_amounts, in_range_amounts),
    st.sampled_from(["", "e0", "e2", "E-1", "_0", ".", "0", ".0"]),
).map("".join)
numbers_as_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.integers(min_value=0).map(lambda i: f"{i:_}"),
)
long_digits = st.from_regex(r"0{0,30}[0-9]{0,30}(\.[0-9]{0,3})?", fullmatch=True)
any_input = st.one_of(
    st.text(),  # arbitrary unicode, newlines included
    st.text(alphabet=TRICKY, max_size=30),
    st.text(alphabet=TRICKY, min_size=15, max_size=200),
    valid_amounts,
    in_range_amounts,
    decorated,
    signed_or_exponent,
    numbers_as_text,
    long_digits,
)


@settings(max_examples=3000, deadline=None)
@given(any_input)
@example("1.5\n")  # the review's case: read as 1.05 by `re.match` + slicing
@example("1.50\n")
@example("1\n")
@example("\uff11.\uff15")  # full-width digits
@example("\u0661")  # Arabic-Indic one: int() takes it
@example("1_000")  # int() takes underscores
@example(" 1.5")
@example("1.5 ")
@example("1.5\r")
@example("100000000000.00")  # MAX_CENTS exactly
@example("100000000000.01")
@example("0" * MAX_MONEY_CHARS)
@example("0" * (MAX_MONEY_CHARS + 1))
@example("1e3")
@example("-0")
@example("")
def test_parse_money_matches_the_decimal_oracle(s: str) -> None:
    expected = oracle(s)
    assert outcome(s) == expected, (s, expected)
    if expected is not None:
        assert Decimal(expected) / 100 == Decimal(s)
        assert parse_money(format_cents(expected)) == expected  # round trip


@settings(max_examples=500, deadline=None)
@given(any_input)
def test_the_money_field_type_uses_the_same_parser(s: str) -> None:
    """Every `Money` field (deposits, bonuses, withdrawals, rewards) validates through it."""
    adapter = TypeAdapter(Money)
    try:
        got: int | None = adapter.validate_python(s)
    except ValidationError:
        got = None
    assert got == oracle(s)
    try:
        from_json: int | None = adapter.validate_json(json.dumps(s))
    except ValidationError:
        from_json = None
    assert from_json == oracle(s)


@pytest.mark.parametrize(
    "value", [1, 1.5, 0, None, True, False, b"1.50", Decimal("1.5"), ["1.50"], {"a": 1}]
)
def test_non_strings_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_money(value)


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0", 0), ("0.5", 50), ("0.05", 5), ("1.5", 150), ("12", 1200), ("007.10", 710)],
)
def test_valid_amounts(text: str, cents: int) -> None:
    assert parse_money(text) == cents
