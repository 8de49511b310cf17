"""What a set of tiers must satisfy, and the tiers resolved per level as the database keeps them.

A tier map names levels "1".."3" (level 0, entry, always earns the base amount) with money
strings. Each tier is at least the base amount and tiers never decrease with the level, so a
worker who climbs never earns less, and the highest level's tier is the most a slot can cost
(what publishing holds). A level without a tier of its own earns the tier of the highest level
below it that has one, or the base amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.fees import fee_cents

LEVELS = (0, 1, 2, 3)
TIER_KEYS = ("1", "2", "3")


def tier_errors(
    field: str, *, base_cents: int, tiers: Mapping[str, int] | None
) -> list[dict[str, Any]]:
    """422 details for tiers that break the rules above (`field` names the request field)."""
    if not tiers:
        return []
    errors: list[dict[str, Any]] = []
    previous_key, previous = "base", base_cents
    for key in sorted(tiers, key=int):
        cents = tiers[key]
        if cents < base_cents:
            errors.append(
                {
                    "loc": ["body", field, key],
                    "msg": f"the level {key} tier is lower than the base amount; a tier is at "
                    "least the base amount",
                }
            )
        elif cents < previous:
            errors.append(
                {
                    "loc": ["body", field, key],
                    "msg": f"the level {key} tier is lower than the level {previous_key} tier; "
                    "tiers never decrease with the level",
                }
            )
        previous_key, previous = key, max(previous, cents)
    return errors


def resolved(base_cents: int, tiers: Mapping[str, int] | None) -> list[int] | None:
    """The amount of each level 0..3 (list index = level), or None without tiers."""
    if not tiers:
        return None
    amounts: list[int] = []
    current = base_cents
    for level in LEVELS:
        current = tiers.get(str(level), current) if level else base_cents
        amounts.append(current)
    return amounts


def resolved_fees(rewards: list[int] | None, *, assignments_per_task: int) -> list[int] | None:
    """The fee of each level's reward by the fee rule (shared/fees.py), as payments checks it."""
    if rewards is None:
        return None
    return [fee_cents(r, assignments_per_task=assignments_per_task) for r in rewards]


def level_of(amounts: list[int] | None, level: int, *, base_cents: int) -> int:
    """The amount a worker of `level` earns (the base without tiers)."""
    if amounts is None:
        return base_cents
    return amounts[max(0, min(level, len(amounts) - 1))]
