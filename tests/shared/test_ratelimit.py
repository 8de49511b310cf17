"""Rate limits: per API key and per address for sign-up, 429 problem+json with Retry-After."""

from __future__ import annotations

import httpx

from services.workers.app import create_app
from shared.errors import RateLimited
from shared.ratelimit import RateLimiter
from tests.conftest import make_settings
from tests.fixtures.accounts import create_worker, unique_email


async def test_limits_answer_429_with_retry_after(database_url: str, live_services, db) -> None:
    settings = make_settings("workers", database_url, live_services.urls).model_copy(
        update={"rate_limit_per_key": "3/minute", "rate_limit_signup": "2/minute"}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await create_worker(client)
            statuses = [
                (await client.get("/v1/accounts/me", headers=worker.headers)).status_code
                for _ in range(4)
            ]
            assert statuses == [200, 200, 200, 429]
            limited = await client.get("/v1/accounts/me", headers=worker.headers)
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
            assert limited.json()["code"] == "rate_limited"
            # another key has its own budget
            other = await create_worker(client)
            assert (await client.get("/v1/accounts/me", headers=other.headers)).status_code == 200
            # the sign-up budget (2/minute per address) is now spent: refused, nothing created
            email = unique_email("limited")
            resp = await client.post(
                "/v1/accounts", json={"kind": "worker", "name": "x", "email": email}
            )
            assert resp.status_code == 429 and "Retry-After" in resp.headers
            assert await db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 0


class FakeClock:
    def __init__(self, start: float = 1_000_040.0) -> None:  # 20 s into a minute window
        self.now = start

    def __call__(self) -> float:
        return self.now


def _retry_after(limiter: RateLimiter, key: str) -> int | None:
    try:
        limiter.check(key)
    except RateLimited as exc:
        return exc.extra["retry_after"]
    return None


def test_sliding_window_counts_the_previous_window_by_its_overlap() -> None:
    clock = FakeClock()
    limiter = RateLimiter("3/minute", clock=clock)
    assert [_retry_after(limiter, "k") for _ in range(3)] == [None, None, None]
    # Spent in this window: room again when the next one starts, 40 s on; even then the three
    # hits still weigh 3 * (1 - t/60), so one more fits only from t = 20 s into it.
    assert _retry_after(limiter, "k") == 40 + 20
    assert _retry_after(limiter, "other") is None  # every key has its own budget
    clock.now += 40 + 19
    assert _retry_after(limiter, "k") == 1
    clock.now += 1
    assert _retry_after(limiter, "k") is None
    assert _retry_after(limiter, "k") is not None


def test_idle_keys_are_forgotten_after_two_windows() -> None:
    clock = FakeClock()
    limiter = RateLimiter("2/second", clock=clock)
    for i in range(100):
        limiter.check(f"key-{i}")
    assert len(limiter._counters) == 100
    clock.now += 2.0
    limiter.check("fresh")
    assert set(limiter._counters) == {"fresh"}
