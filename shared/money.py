"""Money: integer cents inside, strings of dollars outside ("0.25"), never floats.

`parse_money` is the one parser of money input (every `Money` field goes through it). It accepts
exactly the contract's pattern `^[0-9]+(\\.[0-9]{1,2})?$` over the whole string: ASCII digits only
(no unicode digits, which `\\d` and `int()` would take), no sign, exponent, underscore,
surrounding whitespace or line break (`$` in `re.match` also matches before a trailing newline,
so the string is matched with `fullmatch`, never `match`). Bounds: at most `MAX_MONEY_CHARS`
characters (leading zeros are the only way to be longer while in range) and at most `MAX_CENTS`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MONEY_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"
# The same language as MONEY_PATTERN, used with fullmatch (no anchors that a newline can fool).
_MONEY_RE = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]{1,2}))?")
MAX_CENTS = 10**13  # 100 billion dollars: far above any real amount, far below bigint overflow
MAX_MONEY_CHARS = 20  # "100000000000.00" is 15; longer input is refused before any parsing
# An hourly rate is reported only over at least this much measured work (accept to submit):
# over less, a few lucky (or scripted) seconds extrapolate to absurd rates (an answer of 10 ms
# paying 1.00 is "$360,000 an hour"), so the API answers null with the measured seconds beside
# it. Used by `GET /v1/earnings` (hourly_rate) and `GET /v1/work/projects`
# (hourly_rate_estimate's measured basis).
MIN_RATE_SECONDS = 300


def parse_money(value: Any) -> int:
    """Parse a JSON money string into cents; numbers are refused so no float ever sneaks in."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('money must be a string of dollars such as "0.25"')
    match = _MONEY_RE.fullmatch(value) if len(value) <= MAX_MONEY_CHARS else None
    if match is None:
        raise ValueError('money must look like "12" or "0.25" (at most 2 decimals)')
    # Only ASCII digits reach int() here (the pattern is [0-9], not \d).
    cents = int(match["whole"]) * 100 + int((match["frac"] or "").ljust(2, "0"))
    if cents > MAX_CENTS:
        raise ValueError("amount is too large")
    return cents


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


Money = Annotated[
    int,
    BeforeValidator(parse_money),
    PlainSerializer(format_cents, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["0.25"]}),
]
"""An amount in cents that reads and writes as a dollar string."""

MoneyOut = Annotated[
    int,
    PlainSerializer(format_cents, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["0.25"]}),
]
"""An amount in cents produced by the server (balances may be shown signed in ledger rows)."""
