"""Per-account (and, for sign-up, per-client-address) rate limits, shared by every replica.

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

The algorithm is a sliding-window counter (two integers per key: this window's hits and the
previous window's, weighted by how much of it still overlaps the sliding window), as in the
`limits` package, whose rate notation ("3000/minute") we keep.

Where the counts live (`SharedRateLimiter`): in Postgres, table `rate_limit_counters` (migration
0012), so N replicas of a service allow the setting, not N times it. A process does not count
each hit there: it LEASES units of a key's window budget, k at a time, in one statement, and
spends them in memory until they run out or the window ends (then the unspent ones are lost: the
database counted them). k starts at 1, doubles while the key is hot, and is capped at
limit / 64 (and 1,024): limits under 128 a window are still counted one statement per hit. The
statement grants at most a quarter of the room left (at least 1), so near exhaustion leases
shrink to single units and racing processes cannot strand much. The bound: never more than the
limit in a sliding window across all processes (every unit served was counted first); a client
refused by one process may have at most (N-1) x the cap units unspent in the others, and those
still weigh in the next window's carry-over (conservative, never generous). A hot key costs one
statement per k requests; measured in bench/RESULTS.md (session 5).

The statement runs in autocommit: on a small pool of the limiter's own
(`RATE_LIMIT_POOL_SIZE` connections per process), or on an autocommit connection the caller
already holds (`check(key, db)`), never on a connection in a transaction: the counter row would
stay locked until the commit and serialise every request of an account. It grows the row only
while the window has room, so two replicas racing for the last units cannot both get them (ON
CONFLICT DO UPDATE re-checks its WHERE on the row it locked). Windows are numbered by the
database's clock, so replicas agree whatever their own clocks say; a lease's end on the local
clock is taken from before the statement, so it never outlives the database's window.
Concurrent requests of one process for a key whose lease ran out wait for one statement.

The local pre-check: a key refused once is refused in this process without a statement until
the moment the refusal said room would be back (Retry-After), so a client hammering a spent
budget costs nothing but the answer. It never allows anything the database has not counted.
Stale windows are deleted by each process at most once a minute (`prune`).

`RateLimiter` is the same algorithm in one process's memory (the arithmetic's unit tests run
on it; no service uses it any more).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
from limits import RateLimitItem, parse

from shared.errors import RateLimited

log = logging.getLogger("ratelimit")


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
        wait = seconds_until_room(self.limit, self.window, current, previous, elapsed)
        raise refusal(self.item, wait)

    def _sweep(self, number: int) -> None:
        """Forget keys idle for two windows (their counts no longer matter)."""
        stale = [k for k, c in self._counters.items() if c[0] < number - 1]
        for key in stale:
            del self._counters[key]
        self._next_sweep = number + 1


def seconds_until_room(
    limit: int, window: float, current: int, previous: int, elapsed: float
) -> float:
    """When one more hit fits: the previous window's weight decays linearly to zero at the
    end of this window; past that, this window's hits become the previous ones."""
    if current + 1 <= limit and previous:
        # previous * (1 - (elapsed + t) / window) + current + 1 <= limit
        return window * (1 - (limit - current - 1) / previous) - elapsed
    to_next = window - elapsed
    if current + 1 <= limit:
        return to_next
    # Next window: current becomes the previous one, weighted 1 - t / window.
    return to_next + window * (1 - (limit - 1) / max(current, 1))


def refusal(item: RateLimitItem, wait: float) -> RateLimited:
    retry_after = max(1, math.ceil(wait - 1e-6))  # not a whole second more for float dust
    return RateLimited(
        f"Too many requests: the limit is {item}. Retry after {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
        extra={"retry_after": retry_after},
    )


# --------------------------------------------------------------------------- shared (Postgres)


RATE_LIMIT_POOL_SIZE = 4
"""Connections per process for the counters: a lease holds one for a single short statement."""
_ACQUIRE_TIMEOUT_SECONDS = 30.0
PRUNE_INTERVAL_SECONDS = 60.0
LEASE_DIVISOR = 64
"""A lease is at most limit / 64 units: what N processes can strand at a window's end is under
N/64 of the limit, and limits below 128 a window are counted one statement per hit, exactly."""
MAX_LEASE_UNITS = 1024
"""...and at most this many, whatever the limit (a limit of millions is not a reason to hand one
process a budget it may hold idle until the window ends)."""

# One statement per lease. The window is numbered by the database's clock; the previous window's
# count weighs by how much of it the sliding window still covers. The row is created or grown
# only while there is room for one more unit, by the units asked for ($4) but never more than a
# quarter of the room left (at least 1): near exhaustion, leases shrink to single units, so the
# units stranded in processes that will not use them stay few. ON CONFLICT locks the row and
# evaluates its WHERE and SET on the newest version, so concurrent leases from any number of
# processes never hand out more than the room. `granted` keeps the last lease's size so
# RETURNING can say it (RETURNING sees only the new row).
_LEASE = """
WITH clock AS (
    SELECT floor(epoch / $2)::bigint AS window_no, epoch / $2 - floor(epoch / $2) AS progress
    FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS epoch) AS t
), seen AS (
    SELECT clock.window_no, clock.progress,
           coalesce(previous.hits, 0) * (1 - clock.progress) AS carried,
           coalesce(previous.hits, 0) AS previous
    FROM clock
    LEFT JOIN rate_limit_counters AS previous
        ON previous.bucket = $1 AND previous.window_no = clock.window_no - 1
), hit AS (
    INSERT INTO rate_limit_counters AS c (bucket, window_no, hits, granted, expires_at)
    SELECT $1, seen.window_no, fresh.units, fresh.units, to_timestamp((seen.window_no + 2) * $2)
    FROM seen
    CROSS JOIN LATERAL (
        SELECT least($4::int, greatest(1, floor(($3 - seen.carried) / 4))::int) AS units
    ) AS fresh
    WHERE seen.carried + 1 <= $3
    ON CONFLICT (bucket, window_no) DO UPDATE
        SET hits = c.hits + least(
                $4::int, greatest(1, floor(($3 - (SELECT carried FROM seen) - c.hits) / 4))::int
            ),
            granted = least(
                $4::int, greatest(1, floor(($3 - (SELECT carried FROM seen) - c.hits) / 4))::int
            )
        WHERE c.hits + 1 + (SELECT carried FROM seen) <= $3
    RETURNING c.granted
)
SELECT (SELECT granted FROM hit) AS granted, seen.previous, seen.progress,
       coalesce(current.hits, 0) AS current
FROM seen
LEFT JOIN rate_limit_counters AS current
    ON current.bucket = $1 AND current.window_no = seen.window_no
"""
_PRUNE = "DELETE FROM rate_limit_counters WHERE expires_at < now()"


class RateLimitStore:
    """A process's connections to the counters (opened in the app's lifespan), and when it
    last pruned them."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Callable[[], float] = time.monotonic):
        self.pool = pool
        self._clock = clock
        self._next_prune = clock() + PRUNE_INTERVAL_SECONDS
        self._pruning: asyncio.Task[None] | None = None

    async def lease(
        self, bucket: str, window: float, limit: int, units: int, db: Any | None = None
    ) -> asyncpg.Record:
        """Take up to `units` of the window's budget if there is room for one; on `db` (an
        autocommit connection the request already holds) or else on one of the store's own.
        The row's `granted` is None when there was no room."""
        if db is not None:
            row = await db.fetchrow(_LEASE, bucket, window, limit, units)
        else:
            async with self.pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECONDS) as conn:
                row = await conn.fetchrow(_LEASE, bucket, window, limit, units)
        if self._clock() >= self._next_prune:
            self._next_prune = self._clock() + PRUNE_INTERVAL_SECONDS
            self._pruning = asyncio.get_running_loop().create_task(self.prune())
        return row

    async def prune(self) -> int:
        """Delete windows no sliding window weighs any more; returns how many."""
        try:
            async with self.pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECONDS) as conn:
                done = await conn.execute(_PRUNE)
            return int(done.split()[-1])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("rate-limit prune failed: %s", exc)  # the next one will do it
            return 0

    async def close(self) -> None:
        if self._pruning is not None:
            with contextlib.suppress(Exception):
                await self._pruning
        await self.pool.close()


class _Lease:
    """Units of one key's window budget this process holds, and how many to ask for next."""

    __slots__ = ("left", "units", "until")

    def __init__(self, left: int, until: float, units: int) -> None:
        self.left = left
        self.until = until  # local clock; never later than the database's end of the window
        self.units = units


class SharedRateLimiter:
    """One limit (e.g. the per-account budget of the tasks service) counted in Postgres, spent
    from leases.

    `scope` names the limit; the bucket of a key is "scope|limit/window|key", so every
    process with the same setting shares one count, and a changed setting starts afresh.

    A process takes a lease of k units of a key's window budget in one statement and spends it
    locally until it is used up or the window ends; unused units are lost with the window (the
    database counted them). k starts at 1 for a key, doubles each time a lease is used up
    within its window (a hot key), halves when a window ends with units left, and is capped at
    limit / LEASE_DIVISOR and MAX_LEASE_UNITS; the database shrinks it further near exhaustion
    (never more than a quarter of the room left). So across all processes at most the limit is
    allowed in a window, and at least the limit minus the units stranded at its end in other
    processes (under (N-1) x the cap, far less in practice: see the module's docstring).
    """

    def __init__(
        self, rate: str, *, scope: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.item: RateLimitItem = parse(rate)
        self.limit = self.item.amount
        self.window = float(self.item.get_expiry())
        self.prefix = f"{scope}|{self.limit}/{self.item.get_expiry()}|"
        self.max_lease = max(1, min(MAX_LEASE_UNITS, self.limit // LEASE_DIVISOR))
        self.store: RateLimitStore | None = None
        self._clock = clock
        self._refused_until: dict[str, float] = {}
        self._leases: dict[str, _Lease] = {}
        self._leasing: dict[str, asyncio.Event] = {}
        self._next_sweep = 0.0

    async def check(self, key: str, db: Any | None = None) -> None:
        """Count one hit for `key`; raise 429 with Retry-After once the budget is spent.

        `db`: an AUTOCOMMIT connection the request holds (shared.database.AutocommitDb), which
        saves taking one from the store's pool when a lease is due; never a connection inside a
        transaction (the counter row would stay locked until its commit)."""
        if self.store is None:
            raise RuntimeError("SharedRateLimiter used before the app's lifespan opened it")
        while True:
            now = self._clock()
            until = self._refused_until.get(key)
            if until is not None:
                if now < until:
                    raise refusal(self.item, until - now)
                del self._refused_until[key]
            held = self._leases.get(key)
            if held is not None and held.left > 0 and now < held.until:
                held.left -= 1
                return
            leasing = self._leasing.get(key)
            if leasing is None:
                break
            # Another request of this process is taking the key's next lease: one statement
            # for both, then spend from it (or be refused by it).
            await leasing.wait()
        if now >= self._next_sweep:
            self._sweep(now)
        units = self._next_units(held, now)
        leasing = self._leasing[key] = asyncio.Event()
        try:
            row = await self.store.lease(self.prefix + key, self.window, self.limit, units, db)
        finally:
            del self._leasing[key]
            leasing.set()
        granted = row["granted"]
        if granted is not None:
            # `now` was read before the statement: the window ends no earlier than this.
            self._leases[key] = _Lease(
                granted - 1, now + (1 - row["progress"]) * self.window, units
            )
            return
        self._leases.pop(key, None)
        wait = seconds_until_room(
            self.limit,
            self.window,
            row["current"],
            row["previous"],
            row["progress"] * self.window,
        )
        self._refused_until[key] = now + wait
        raise refusal(self.item, wait)

    def _next_units(self, held: _Lease | None, now: float) -> int:
        """Double for a key whose lease was used up in its window, halve for one whose window
        ended with units left, start at 1 for one idle for a whole window."""
        if held is None or now >= held.until + self.window:
            return 1
        if held.left <= 0:
            return min(self.max_lease, held.units * 2)
        return max(1, held.units // 2)

    def _sweep(self, now: float) -> None:
        """Forget refusals that have run out and leases idle for a window (at most once a
        window)."""
        for key in [k for k, until in self._refused_until.items() if until <= now]:
            del self._refused_until[key]
        for key in [k for k, held in self._leases.items() if held.until + self.window <= now]:
            del self._leases[key]
        self._next_sweep = now + self.window


async def open_rate_limits(state: Any, database_url: str, service: str) -> RateLimitStore:
    """The store for every SharedRateLimiter on an app's state (its lifespan calls this)."""
    from shared.database import make_pool

    pool = await make_pool(
        database_url, max_size=RATE_LIMIT_POOL_SIZE, application_name=f"{service}-ratelimit"
    )
    store = RateLimitStore(pool)
    for value in vars(state).get("_state", {}).values():
        if isinstance(value, SharedRateLimiter):
            value.store = store
    return store


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
