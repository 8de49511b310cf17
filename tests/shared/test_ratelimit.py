"""Rate limits: per API key and per address for sign-up, 429 problem+json with Retry-After."""

from __future__ import annotations

import httpx

from services.workers.app import create_app
from tests.conftest import make_settings
from tests.factories import create_worker, unique_email


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
