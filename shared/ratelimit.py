"""Per-API-key (and, for sign-up, per-client-address) rate limits, counted in process memory.

Counters live in each process's memory: no extra round trip on the hot paths, and a replica
enforces its own budget (with N replicas behind a balancer the effective limit is about N times
the setting; set it accordingly).

The algorithm is a sliding-window counter (two integers per key: this window's hits and the
previous window's, weighted by how much of it still overlaps the sliding window), as in the
`limits` package, whose rate notation ("3000/minute") we keep. Its in-memory storage starts a
timer thread to expire keys, which showed up on every request in the bench's profile (thread
start-ups and GIL hand-offs); here an event-loop process needs no locks and expired keys are
swept at most once per window, on the request path, in one pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItem, parse

from shared.errors import RateLimited


class RateLimiter:
    def __init__(self, rate: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.item: RateLimitItem = parse(rate)
        self.limit = self.item.amount
        self.window = float(self.item.get_expiry())
        self._clock = clock
        # key -> [window number, hits in it, hits in the window before]
        self._counters: dict[str, list[int]] = {}
        self._next_sweep = 0

    def check(self, key: str) -> None:
        """Count one hit for `key`; raise 429 with Retry-After once the budget is spent."""
        now = self._clock()
        number = int(now // self.window)
        elapsed = now - number * self.window  # into the current window
        if number >= self._next_sweep:
            self._sweep(number)
        counter = self._counters.get(key)
        if counter is None or counter[0] < number - 1:
            counter = self._counters[key] = [number, 0, 0]
        elif counter[0] == number - 1:
            counter[0], counter[1], counter[2] = number, 0, counter[1]
        current, previous = counter[1], counter[2]
        overlap = 1.0 - elapsed / self.window  # share of the previous window still counted
        if previous * overlap + current + 1 <= self.limit:
            counter[1] += 1
            return
        wait = self._seconds_until_room(current, previous, elapsed)
        retry_after = max(1, math.ceil(wait - 1e-6))  # not a whole second more for float dust
        raise RateLimited(
            f"Too many requests: the limit is {self.item}. Retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after": retry_after},
        )

    def _seconds_until_room(self, current: int, previous: int, elapsed: float) -> float:
        """When one more hit fits: the previous window's weight decays linearly to zero at the
        end of this window; past that, this window's hits become the previous ones."""
        if current + 1 <= self.limit and previous:
            # previous * (1 - (elapsed + t) / window) + current + 1 <= limit
            return self.window * (1 - (self.limit - current - 1) / previous) - elapsed
        to_next = self.window - elapsed
        if current + 1 <= self.limit:
            return to_next
        # Next window: current becomes the previous one, weighted 1 - t / window.
        return to_next + self.window * (1 - (self.limit - 1) / current)

    def _sweep(self, number: int) -> None:
        """Forget keys idle for two windows (their counts no longer matter)."""
        stale = [k for k, c in self._counters.items() if c[0] < number - 1]
        for key in stale:
            del self._counters[key]
        self._next_sweep = number + 1


def validate_rate(value: str) -> str:
    parse(value)  # raises ValueError on a malformed rate such as "ten per minute"
    return value
