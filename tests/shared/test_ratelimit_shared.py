"""Rate limits counted in Postgres (shared.ratelimit.SharedRateLimiter): exact across processes,
the sliding window's arithmetic on the database's clock, the local pre-check, the prune.

Each "replica" here is a limiter with its own store and pool, as two processes would have.
The end-to-end version (two workers replicas behind nginx) is in tests/gateway/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.database import AutocommitDb, make_pool
from shared.errors import RateLimited
from shared.ratelimit import RateLimitStore, SharedRateLimiter


class CountingStore(RateLimitStore):
    """Counts the statements a limiter sends."""

    statements = 0

    async def hit(
        self, bucket: str, window: float, limit: int, db: AutocommitDb | None = None
    ) -> asyncpg.Record:
        self.statements += 1
        return await super().hit(bucket, window, limit, db)


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
