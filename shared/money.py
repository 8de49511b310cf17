"""Money: integer cents inside, strings of dollars outside ("0.25"), never floats."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MONEY_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"
_MONEY_RE = re.compile(MONEY_PATTERN)
MAX_CENTS = 10**13  # 100 billion dollars: far above any real amount, far below bigint overflow


def parse_money(value: Any) -> int:
    """Parse a JSON money string into cents; numbers are refused so no float ever sneaks in."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('money must be a string of dollars such as "0.25"')
    if len(value) > 20 or not _MONEY_RE.match(value):
        raise ValueError('money must look like "12" or "0.25" (at most 2 decimals)')
    whole, _, frac = value.partition(".")
    cents = int(whole) * 100 + int((frac + "00")[:2])
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
