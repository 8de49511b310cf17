"""Rate limits: per account, per address for sign-up (X-Forwarded-For believed only from
trusted proxies), key creation per account and capped; 429 problem+json with Retry-After."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from services.workers.app import create_app
from shared.errors import RateLimited
from shared.ratelimit import RateLimiter, TrustedProxies
from tests.conftest import ROOT, LiveServices, make_settings
from tests.fixtures.accounts import create_worker, unique_email


@pytest.fixture(autouse=True)
async def fresh_counters(db) -> None:
    """The counters are shared by every app on the database (that is the point): a test with a
    low sign-up limit must not inherit the sign-ups of the one before, from the same address."""
    await db.execute("DELETE FROM rate_limit_counters")


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


# --------------------------------------------------------------------------- per account


def _app(database_url: str, live_services, **limits):
    settings = make_settings("workers", database_url, live_services.urls).model_copy(update=limits)
    return create_app(settings)


async def test_the_budget_is_per_account_whatever_key_is_used(database_url, live_services) -> None:
    """Minting keys used to multiply the budget (it was counted per key)."""
    app = _app(database_url, live_services, rate_limit_per_key="4/minute")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await create_worker(client)  # anonymous: not counted
            keys = [worker.headers]
            for _ in range(2):  # two authenticated requests
                created = await client.post("/v1/accounts/me/api-keys", headers=worker.headers)
                assert created.status_code == 201, created.text
                keys.append({"Authorization": f"Bearer {created.json()['api_key']}"})
            statuses = [
                (await client.get("/v1/accounts/me", headers=headers)).status_code
                for headers in (keys[1], keys[2], keys[2], keys[1])
            ]
            assert statuses == [200, 200, 429, 429]
            other = await create_worker(client)  # another account has its own budget
            assert (await client.get("/v1/accounts/me", headers=other.headers)).status_code == 200


def test_rate_limit_per_account_takes_precedence_over_the_old_name() -> None:
    from services.workers.settings import Settings

    base = {"database_url": "postgresql://x@h/d", "internal_token": "t" * 20}
    assert Settings(**base, rate_limit_per_key="7/minute").account_rate_limit == "7/minute"
    both = Settings(**base, rate_limit_per_key="7/minute", rate_limit_per_account="5/second")
    assert both.account_rate_limit == "5/second"
    assert Settings(**base).account_rate_limit == "3000/minute"


async def test_key_creation_is_limited_per_account(database_url, live_services, db) -> None:
    app = _app(database_url, live_services, rate_limit_api_key_creation="2/minute")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await create_worker(client)
            statuses = [
                (await client.post("/v1/accounts/me/api-keys", headers=worker.headers)).status_code
                for _ in range(3)
            ]
            assert statuses == [201, 201, 429]
            refused = await client.post("/v1/accounts/me/api-keys", headers=worker.headers)
            assert refused.json()["code"] == "rate_limited" and "Retry-After" in refused.headers
            count = "SELECT count(*) FROM api_keys WHERE account_id = $1"
            assert await db.fetchval(count, worker.id) == 3  # sign-up's key + two
            other = await create_worker(client)
            resp = await client.post("/v1/accounts/me/api-keys", headers=other.headers)
            assert resp.status_code == 201


async def test_active_keys_are_capped_even_under_concurrent_creation(
    database_url, live_services, db
) -> None:
    app = _app(database_url, live_services, max_active_api_keys=4)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            worker = await create_worker(client)  # 1 active key
            results = await asyncio.gather(
                *(client.post("/v1/accounts/me/api-keys", headers=worker.headers) for _ in range(8))
            )
            statuses = sorted(r.status_code for r in results)
            assert statuses == [201] * 3 + [409] * 5, statuses
            refused = next(r for r in results if r.status_code == 409)
            assert refused.json()["code"] == "too_many_api_keys"
            active = "SELECT count(*) FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL"
            assert await db.fetchval(active, worker.id) == 4
            # revoking one makes room for one
            key_id = next(r.json()["id"] for r in results if r.status_code == 201)
            revoke = await client.delete(
                f"/v1/accounts/me/api-keys/{key_id}", headers=worker.headers
            )
            assert revoke.status_code == 204
            statuses = [
                (await client.post("/v1/accounts/me/api-keys", headers=worker.headers)).status_code
                for _ in range(2)
            ]
            assert statuses == [201, 409]


# --------------------------------------------------------------------------- client address


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ((), "198.51.100.7", ["203.0.113.1"], "198.51.100.7"),  # nobody trusted: the peer
        (("10.0.0.0/8",), "198.51.100.7", ["203.0.113.1"], "198.51.100.7"),  # peer untrusted
        (("10.0.0.0/8",), "10.1.2.3", [], "10.1.2.3"),  # trusted peer, no header
        (("10.0.0.0/8",), "10.1.2.3", ["203.0.113.1"], "203.0.113.1"),
        # the client's own entries (left) are ignored: the right-most untrusted one counts
        (("10.0.0.0/8",), "10.1.2.3", ["1.1.1.1, 2.2.2.2, 203.0.113.1"], "203.0.113.1"),
        # a chain of trusted proxies is walked through
        (("10.0.0.0/8",), "10.1.2.3", ["9.9.9.9, 203.0.113.1, 10.0.0.5"], "203.0.113.1"),
        (("10.0.0.0/8",), "10.1.2.3", ["9.9.9.9", "203.0.113.1, 10.0.0.5"], "203.0.113.1"),
        (("10.0.0.0/8",), "10.1.2.3", ["10.0.0.9, 10.0.0.5"], "10.0.0.9"),  # all trusted
        (("10.0.0.0/8",), "10.1.2.3", ["1.1.1.1, garbage"], "10.1.2.3"),  # garbage: the proxy
        (("10.0.0.0/8",), "10.1.2.3", ["203.0.113.1:5555"], "203.0.113.1"),
        (("10.0.0.0/8",), "10.1.2.3", ["[2001:db8::1]:443"], "2001:db8::/64"),
        (("10.0.0.0/8",), "10.1.2.3", ["::ffff:203.0.113.1"], "203.0.113.1"),
        # IPv6 clients are counted per /64: a host usually holds the whole prefix
        ((), "2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64"),
        (("::1",), "::1", ["2001:db8:1:2:bbbb::9"], "2001:db8:1:2::/64"),
        ((), None, ["203.0.113.1"], "unknown"),
    ],
)
def test_client_address(trusted, peer, forwarded, client) -> None:
    assert TrustedProxies(trusted).client_key(peer, forwarded) == client


def test_forwarded_allow_ips_setting() -> None:
    from services.workers.settings import Settings

    base = {"database_url": "postgresql://x@h/d", "internal_token": "t" * 20}
    assert Settings(**base).forwarded_allow_ips == ()  # trust nobody by default
    parsed = Settings(**base, forwarded_allow_ips="10.0.0.1, 172.30.240.0/24,::1")
    assert parsed.forwarded_allow_ips == ("10.0.0.1/32", "172.30.240.0/24", "::1/128")
    assert Settings(**base, forwarded_allow_ips='["10.0.0.0/8"]').forwarded_allow_ips == (
        "10.0.0.0/8",
    )
    for wrong in ("*", "gateway", "10.0.0.0/33"):
        with pytest.raises(ValueError):
            Settings(**base, forwarded_allow_ips=wrong)


async def _signups(client: httpx.AsyncClient, url: str, forwarded: list[str]) -> list[int]:
    statuses = []
    for address in forwarded:
        resp = await client.post(
            url + "/v1/accounts",
            json={"kind": "worker", "name": "x", "email": unique_email("xff")},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(resp.status_code)
    return statuses


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    database_url, live_services
) -> None:
    forwarded = ["203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.1"]
    untrusted = _app(database_url, live_services, rate_limit_signup="2/minute")
    trusted = _app(
        database_url,
        live_services,
        rate_limit_signup="2/minute",
        forwarded_allow_ips=("127.0.0.1/32",),
    )
    for app, expected in ((untrusted, [201, 201, 429, 429]), (trusted, [201, 201, 201, 429])):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)  # the peer is 127.0.0.1
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert await _signups(client, "", forwarded) == expected


async def test_uvicorn_does_not_rewrite_the_client_address(database_url, tmp_path) -> None:
    """A real uvicorn process launched as the suite launches every service: it used to believe
    X-Forwarded-For from any loopback peer, so a client reset its sign-up bucket per request."""
    live = LiveServices(database_url, tmp_path)
    live.env["WORKERS_RATE_LIMIT_SIGNUP"] = "2/minute"
    live.start("workers")
    try:
        live.wait_healthy("workers")
        async with httpx.AsyncClient(timeout=10) as client:
            forwarded = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
            assert await _signups(client, live.urls["workers"], forwarded) == [201, 201, 429]
    finally:
        live.stop("workers")


def test_every_uvicorn_launch_leaves_forwarded_headers_to_the_app() -> None:
    from bench.stack import uvicorn_argv
    from devtools.cli import service_specs

    assert "--no-proxy-headers" in uvicorn_argv("services.tasks.app:create_app", 8001)
    for spec in service_specs("127.0.0.1", {"tasks": 1, "workers": 2, "payments": 3}):
        if "uvicorn" in spec.argv:
            assert "--no-proxy-headers" in spec.argv, spec.name
    for path in (
        "tests/conftest.py",
        "tests/reliability/conftest.py",
        "docker/Dockerfile",
        "devtools/cli.py",
    ):
        text = (ROOT / path).read_text()
        launches = len(re.findall(r'"uvicorn"\s*,', text))
        assert launches and text.count('"--no-proxy-headers"') >= launches, path
