"""Time-sortable ids whose only form is upper-case alphanumeric.

A 26-character ULID (48-bit millisecond time + 80 random bits, Crockford base32) satisfies both
the public contract (`[A-Za-z0-9_-]`, at most 64 chars) and MTurk's upper-case alphanumeric ids,
so the future MTurk front door can hand out the same ids. Sorting by id sorts by creation time,
which lets cursor pagination key on the id alone.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_id() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))
