"""Ids: 26 Crockford base32 digits of (48-bit millisecond time, 80 random bits), so sorting by
id sorts by creation time. new_id encodes by digit pairs (a table look-up per 10 bits, for
speed on every request); this checks it against the plain digit-by-digit definition."""

from __future__ import annotations

import random
from unittest import mock

import pytest

from shared import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def digit_by_digit(millis: int, random_bits: bytes) -> str:
    value = (millis << 80) | int.from_bytes(random_bits, "big")
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def id_at(millis: int, random_bits: bytes) -> str:
    with (
        mock.patch.object(ids.time, "time", return_value=(millis + 0.5) / 1000),
        mock.patch.object(ids.os, "urandom", return_value=random_bits),
    ):
        return ids.new_id()


@pytest.mark.parametrize(
    ("millis", "random_bits"),
    [
        (0, bytes(10)),
        (2**48 - 1, b"\xff" * 10),
        (1, b"\x00" * 9 + b"\x01"),
        (2**47, b"\x80" + bytes(9)),
        *(
            (random.Random(seed).randrange(2**48), random.Random(seed).randbytes(10))
            for seed in range(200)
        ),
    ],
)
def test_new_id_is_the_crockford_base32_of_time_and_randomness(
    millis: int, random_bits: bytes
) -> None:
    assert id_at(millis, random_bits) == digit_by_digit(millis, random_bits)


def test_new_ids_sort_by_time_and_fit_the_public_pattern() -> None:
    earlier = id_at(1_700_000_000_000, b"\xff" * 10)
    later = id_at(1_700_000_000_001, bytes(10))
    assert earlier < later
    fresh = ids.new_id()
    assert len(fresh) == 26 and ids.is_valid_id(fresh)
    assert set(fresh) <= set(CROCKFORD)
