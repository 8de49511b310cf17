"""ISO 3166-1 alpha-2 countries and ISO 639-1 languages, from pycountry (a maintained dataset)."""

from __future__ import annotations

from functools import cache

import pycountry


@cache
def country_codes() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def language_codes() -> frozenset[str]:
    return frozenset(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))


def normalize_country(value: str) -> str:
    code = value.strip().upper()
    if code not in country_codes():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def normalize_language(value: str) -> str:
    code = value.strip().lower()
    if code not in language_codes():
        raise ValueError(f"{value!r} is not an ISO 639-1 language code")
    return code
