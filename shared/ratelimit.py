"""Per-account (and, for sign-up, per-client-address) rate limits, counted in process memory.

What is counted:
- every authenticated request, per ACCOUNT (`*_RATE_LIMIT_PER_ACCOUNT`, alias
  `*_RATE_LIMIT_PER_KEY`): all of an account's keys share one budget, so minting keys buys
  nothing (shared.auth.authenticate);
- key creation per account (`*_RATE_LIMIT_API_KEY_CREATION`; the workers service also caps the
  active keys per account);
- sign-up per client address (`*_RATE_LIMIT_SIGNUP`), an IPv6 client per /64 (one host usually
  holds a whole /64). The address is the TCP peer, or, when the peer is a trusted proxy
  (`*_FORWARDED_ALLOW_IPS`), the right-most X-Forwarded-For entry that is not a trusted proxy
  (`TrustedProxies`). uvicorn runs with --no-proxy-headers everywhere, so this is the one
  place that reads forwarded headers.

Counters live in each process's memory: no extra round trip on the hot paths, and a replica
enforces its own budget (with N replicas behind a balancer the effective limit is about N times
the setting; set it accordingly). Budgets shared across replicas (in Postgres) are not done yet.

The algorithm is a sliding-window counter (two integers per key: this window's hits and the
previous window's, weighted by how much of it still overlaps the sliding window), as in the
`limits` package, whose rate notation ("3000/minute") we keep. Its in-memory storage starts a
timer thread to expire keys, which showed up on every request in the bench's profile (thread
start-ups and GIL hand-offs); here an event-loop process needs no locks and expired keys are
swept at most once per window, on the request path, in one pass.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def validate_networks(value: Any) -> tuple[str, ...]:
    """`FORWARDED_ALLOW_IPS`: IPs or CIDRs, comma-separated or a JSON list; normalised."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        items: Iterable[Any] = json.loads(text) if text.startswith("[") else text.split(",")
    else:
        items = value
    out = []
    for item in items:
        text = str(item).strip()
        if text:
            # ValueError on "*", host names and the like: trusting everyone is not an option
            out.append(str(ipaddress.ip_network(text, strict=False)))
    return tuple(out)


def _parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: bare, "[v6]:port" or "v4:port"; None if malformed."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def bucket(address: IPAddress) -> str:
    """The rate-limit key of a client address: IPv4 as is, IPv6 by its /64."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TrustedProxies:
    """Who the client is, given the TCP peer and the X-Forwarded-For header(s).

    A peer outside the trusted networks is the client, whatever it sends. A trusted peer's
    X-Forwarded-For is read from the right (each proxy appends the address it saw): the first
    entry that is not itself a trusted proxy is the client. Everything left of it was written by
    the client and is ignored. Only X-Forwarded-For is read (not `Forwarded`, not X-Real-IP).
    """

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> IPAddress | None:
        """The client's address; None when the peer is unknown (no address at all)."""
        address = _parse_address(peer) if peer else None
        if address is None or not self.networks or not self.trusts(address):
            return address
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            parsed = _parse_address(hop)
            if parsed is None:
                # Only a trusted proxy writes this far right; garbage here is not a client
                # address: count it against the proxy rather than give it a fresh bucket.
                return address
            if not self.trusts(parsed):
                return parsed
            address = parsed  # a proxy in the chain: keep walking left
        return address  # the whole chain is trusted: its left-most hop

    def client_key(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The sign-up bucket of a request."""
        address = self.client(peer, forwarded_for)
        if address is None:
            return peer or "unknown"  # not an IP (a unix socket, a test transport)
        return bucket(address)
