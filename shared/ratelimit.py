"""Per-API-key (and, for sign-up, per-client-address) rate limits with `limits`.

Counters live in each process's memory: no extra round trip on the hot paths, and a replica
enforces its own budget (with N replicas behind a balancer the effective limit is about N times
the setting; set it accordingly). The sliding-window counter keeps two integers per key.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from shared.errors import RateLimited


class RateLimiter:
    def __init__(self, rate: str) -> None:
        self.item: RateLimitItem = parse(rate)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def check(self, key: str) -> None:
        """Count one hit for `key`; raise 429 with Retry-After once the budget is spent."""
        if self._limiter.hit(self.item, key):
            return
        reset = self._limiter.get_window_stats(self.item, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"Too many requests: the limit is {self.item}. Retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after": retry_after},
        )


def validate_rate(value: str) -> str:
    parse(value)  # raises ValueError on a malformed rate such as "ten per minute"
    return value
