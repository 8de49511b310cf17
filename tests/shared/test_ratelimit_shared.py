"""Rate limits counted in Postgres (shared.ratelimit.SharedRateLimiter): never more than the limit
across processes, leases that make a hot key cost a statement per many requests, the sliding
window's arithmetic on the database's clock, the local pre-check, the prune.

Each "replica" here is a limiter with its own store and pool, as two processes would have, except
in the test that starts two real processes. The end-to-end version (two workers replicas behind
nginx) is in tests/gateway/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared.database import AutocommitDb, make_pool
from shared.errors import RateLimited
from shared.ratelimit import RateLimitStore, SharedRateLimiter, _Lease


class CountingStore(RateLimitStore):
    """Counts the statements a limiter sends, and the units each lease was granted."""

    statements = 0

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.grants: list[int | None] = []

    async def lease(
        self, bucket: str, window: float, limit: int, units: int, db: AutocommitDb | None = None
    ) -> asyncpg.Record:
        self.statements += 1
        row = await super().lease(bucket, window, limit, units, db)
        self.grants.append(row["granted"])
        return row


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[CountingStore]]:
    opened = [
        CountingStore(await make_pool(database_url, max_size=4, application_name=f"rl-{i}"))
        for i in range(2)
    ]
    yield opened
    for store in opened:
        await store.close()


def limiter(rate: str, store: RateLimitStore, scope: str) -> SharedRateLimiter:
    shared = SharedRateLimiter(rate, scope=scope)
    shared.store = store
    return shared


async def outcome(limiter_: SharedRateLimiter, key: str) -> int | None:
    """None when allowed, else the Retry-After."""
    try:
        await limiter_.check(key)
    except RateLimited as exc:
        return exc.extra["retry_after"]
    return None


async def test_two_processes_racing_share_one_budget_exactly(stores) -> None:
    scope = f"test-{uuid.uuid4().hex[:8]}"
    replicas = [limiter("25/minute", store, scope) for store in stores]
    results = await asyncio.gather(*(outcome(replicas[i % 2], "account-1") for i in range(120)))
    assert results.count(None) == 25
    refused = [r for r in results if r is not None]
    assert all(1 <= r <= 120 for r in refused), refused
    # both processes served part of it
    assert all(store.statements > 0 for store in stores)
    # another key, another scope, another limit: budgets of their own
    assert await outcome(replicas[0], "account-2") is None
    assert await outcome(limiter("25/minute", stores[0], scope + "x"), "account-1") is None
    assert await outcome(limiter("26/minute", stores[0], scope), "account-1") is None


async def test_on_the_requests_own_autocommit_connection_the_count_is_the_same(
    stores, database_url: str
) -> None:
    """The hot paths count on the connection they hold (no second connection): the same
    bucket, the same budget as the pool's hits of another process."""
    scope = f"test-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        on_conn = limiter("6/minute", stores[0], scope)
        other = limiter("6/minute", stores[1], scope)
        db = AutocommitDb(conn)
        results = []
        for i in range(10):
            try:
                await (on_conn.check("k", db) if i % 2 else other.check("k"))
                results.append(None)
            except RateLimited as exc:
                results.append(exc.extra["retry_after"])
        assert results.count(None) == 6, results
        assert stores[0].statements >= 3 and stores[1].statements >= 3
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


async def test_the_previous_window_weighs_by_its_overlap(stores, db) -> None:
    """10 hits in the previous hour, limit 10/hour: the sliding window still counts
    10 * (1 - progress), so only the rest of the budget is left now."""
    scope = f"test-{uuid.uuid4().hex[:8]}"
    hourly = limiter("10/hour", stores[0], scope)
    bucket = hourly.prefix + "k"
    row = await db.fetchrow(
        "SELECT floor(e / 3600)::bigint AS window_no, e / 3600 - floor(e / 3600) AS progress"
        " FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS e) t"
    )
    await db.execute(
        "INSERT INTO rate_limit_counters (bucket, window_no, hits, expires_at)"
        " VALUES ($1, $2, 10, now() + interval '1 hour')",
        bucket,
        row["window_no"] - 1,
    )
    carried = 10 * (1 - row["progress"])
    room = math.floor(10 - carried + 1e-9)
    results = [await outcome(hourly, "k") for _ in range(room + 1)]
    assert results[:room] == [None] * room
    # Refused until enough of the previous window has slid out: about an hour / 10 per hit.
    assert results[room] is not None and 1 <= results[room] <= 3600
    hits = await db.fetchval(
        "SELECT hits FROM rate_limit_counters WHERE bucket = $1 AND window_no = $2",
        bucket,
        row["window_no"],
    )
    assert (hits or 0) == room  # a refused hit is not counted


async def test_a_refused_key_is_refused_locally_until_its_retry_after(stores) -> None:
    store = stores[0]
    scope = f"test-{uuid.uuid4().hex[:8]}"
    now = [1000.0]
    local = SharedRateLimiter("2/minute", scope=scope, clock=lambda: now[0])
    local.store = store
    assert [await outcome(local, "k") for _ in range(3)][:2] == [None, None]
    counted = store.statements
    assert counted == 3
    first = await outcome(local, "k")
    assert first is not None
    assert store.statements == counted  # hammering a spent budget costs no statement
    # another replica's count does not matter to a local refusal: only the database allows
    now[0] += first  # the moment the refusal said room would be back
    await outcome(local, "k")
    assert store.statements == counted + 1


async def test_prune_deletes_only_windows_nobody_weighs(stores, db) -> None:
    scope = f"test-prune-{uuid.uuid4().hex[:8]}"
    await db.execute(
        "INSERT INTO rate_limit_counters (bucket, window_no, hits, expires_at) VALUES"
        " ($1, 1, 5, now() - interval '1 second'), ($2, 2, 5, now() + interval '1 minute')",
        scope + "|old",
        scope + "|live",
    )
    assert await stores[0].prune() >= 1
    left = await db.fetch(
        "SELECT bucket FROM rate_limit_counters WHERE bucket LIKE $1", scope + "|%"
    )
    assert [r["bucket"] for r in left] == [scope + "|live"]


async def test_the_counters_are_unlogged(db) -> None:
    persistence = await db.fetchval(
        "SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limit_counters'"
    )
    assert persistence == "u"


async def test_a_limiter_without_its_store_refuses_to_guess() -> None:
    with pytest.raises(RuntimeError):
        await SharedRateLimiter("1/minute", scope="x").check("k")


# --------------------------------------------------------------------------- leases


async def not_in_the_last_seconds_of(db, window: float, margin: float) -> None:
    """Wait out the database's window boundary when it is near: a test counting one window's
    budget must not have it roll over halfway (the next window would have room again)."""
    into = await db.fetchval(
        "SELECT (extract(epoch FROM clock_timestamp())::numeric % $1::numeric)::float8", window
    )
    if into > window - margin:
        await asyncio.sleep(window - into + 0.5)


async def window_hits(db, bucket: str) -> int:
    """Units leased in the database's current window for `bucket`."""
    return await db.fetchval(
        "SELECT coalesce(sum(hits), 0) FROM rate_limit_counters WHERE bucket = $1", bucket
    )


async def test_a_hot_key_costs_a_statement_per_many_requests(stores, db) -> None:
    """3000/hour: leases double up to limit / 64 = 46 units, so 1,000 requests cost a few
    dozen statements, and the database counts at least what was served (the lease's
    unspent units too) and never more than the limit."""
    await not_in_the_last_seconds_of(db, 3600, 30)
    store = stores[0]
    scope = f"test-{uuid.uuid4().hex[:8]}"
    hot = limiter("3000/hour", store, scope)
    assert hot.max_lease == 46
    results = [await outcome(hot, "k") for _ in range(1000)]
    assert results == [None] * 1000
    assert store.statements <= 35, store.grants  # 1,2,4,8,16,32,46,46... about 27
    assert max(g or 0 for g in store.grants) == 46
    counted = await window_hits(db, hot.prefix + "k")
    assert 1000 <= counted <= 1000 + 46
    # Concurrent requests of one process share a lease request rather than each sending one.
    before = store.statements
    burst = await asyncio.gather(*(outcome(hot, "burst") for _ in range(200)))
    assert burst == [None] * 200
    assert store.statements - before <= 20, store.grants[before:]


async def test_a_lease_ends_with_its_window(stores) -> None:
    """Units are never spent past the end of the window they were counted in: at the end the
    process asks again (and starts small: the key was idle for a whole window)."""
    store = stores[0]
    now = [1000.0]
    hot = SharedRateLimiter("6400/hour", scope=f"test-{uuid.uuid4().hex[:8]}", clock=lambda: now[0])
    hot.store = store
    for _ in range(30):
        assert await outcome(hot, "k") is None
    statements = store.statements
    held = hot._leases["k"]
    assert held.left > 0 and held.until <= now[0] + 3600
    assert await outcome(hot, "k") is None
    assert store.statements == statements  # spent from the lease
    now[0] = held.until + 3600  # past the lease's window (the database's window is the same)
    assert await outcome(hot, "k") is None
    assert store.statements == statements + 1
    assert store.grants[-1] == 1


async def test_near_exhaustion_racing_leases_never_overshoot(stores, db) -> None:
    """10 units left of 6400 an hour, two processes asking for their largest lease (100) at
    once: the database hands out at most a quarter of the room per lease, 10 are served in
    all and the count stays at the limit."""
    await not_in_the_last_seconds_of(db, 3600, 30)
    scope = f"test-{uuid.uuid4().hex[:8]}"
    replicas = [limiter("6400/hour", store, scope) for store in stores]
    bucket = replicas[0].prefix + "k"
    await db.execute(
        "INSERT INTO rate_limit_counters (bucket, window_no, hits, expires_at)"
        " VALUES ($1, floor(extract(epoch FROM clock_timestamp()) / 3600)::bigint, 6390,"
        " now() + interval '2 hours')",
        bucket,
    )
    for replica in replicas:  # as if each had just used up a lease of the largest size
        replica._leases["k"] = _Lease(0, replica._clock() + 60, replica.max_lease)
    results = await asyncio.gather(*(outcome(replicas[i % 2], "k") for i in range(100)))
    assert results.count(None) == 10, [s.grants for s in stores]
    assert await window_hits(db, bucket) == 6400
    grants = [g for s in stores for g in s.grants if g is not None]
    assert sum(grants) == 10 and max(grants) <= 2, grants  # floor(10 / 4), then smaller


async def test_units_stranded_in_an_idle_process_are_bounded_by_its_lease(stores, db) -> None:
    """One process serves a hot key for a while and goes quiet holding part of a lease; the
    other uses the rest of the budget. What is lost is the idle process's unspent units, no
    more than the largest lease (limit / 64)."""
    await not_in_the_last_seconds_of(db, 3600, 60)
    scope = f"test-{uuid.uuid4().hex[:8]}"
    first, second = (limiter("1280/hour", store, scope) for store in stores)
    assert first.max_lease == 20
    served_first = 0
    while served_first < 300 or first._leases["k"].left == 0:
        assert await outcome(first, "k") is None
        served_first += 1
    stranded = first._leases["k"].left
    served_second = 0
    while await outcome(second, "k") is None:
        served_second += 1
    assert served_first + served_second == 1280 - stranded
    assert 0 < stranded <= first.max_lease
    assert await window_hits(db, first.prefix + "k") == 1280


REPO_ROOT = Path(__file__).resolve().parents[2]
_RACER = """
import asyncio, json, sys
from shared.database import make_pool
from shared.errors import RateLimited
from shared.ratelimit import RateLimitStore, SharedRateLimiter, _Lease

async def main(url, scope, rate, attempts):
    store = RateLimitStore(await make_pool(url, max_size=4, application_name="rl-racer"))
    statements = 0
    lease = store.lease
    async def counted(*args):
        nonlocal statements
        statements += 1
        return await lease(*args)
    store.lease = counted
    limiter = SharedRateLimiter(rate, scope=scope)
    limiter.store = store
    allowed = 0
    async def one():
        nonlocal allowed
        try:
            await limiter.check("account")
            allowed += 1
        except RateLimited:
            pass
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start together
    for _ in range(attempts // 20):
        await asyncio.gather(*(one() for _ in range(20)))
    await store.close()
    print(json.dumps({"allowed": allowed, "statements": statements}), flush=True)

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4])))
"""


async def test_two_real_processes_racing_allow_the_limit_not_twice_it(
    database_url: str, db
) -> None:
    """Two OS processes, each with its own pool and leases, hammer one account's 1000/hour
    (1,200 requests each, 20 at a time, more than the limit so that each runs until refused):
    1000 are served in all, not 2000, with far fewer statements than requests."""
    await not_in_the_last_seconds_of(db, 3600, 60)
    scope = f"test-{uuid.uuid4().hex[:8]}"
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACER,
            database_url,
            scope,
            "1000/hour",
            "1200",
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdin is not None
        assert (await asyncio.wait_for(racer.stdout.readline(), 60)).strip() == b"ready"
    for racer in racers:
        racer.stdin.write(b"go\n")
        await racer.stdin.drain()
    outputs = [await asyncio.wait_for(racer.communicate(), 120) for racer in racers]
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert all(racer.returncode == 0 for racer in racers)
    # Both processes ran until refused, so neither holds unspent units: exactly the limit.
    assert sum(r["allowed"] for r in results) == 1000, results
    assert all(r["allowed"] > 0 for r in results), results
    assert sum(r["statements"] for r in results) <= 200, results  # vs 2,400 requests
    assert await window_hits(db, f"{scope}|1000/3600|account") == 1000
