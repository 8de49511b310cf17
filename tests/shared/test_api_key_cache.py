"""The per-process API-key cache (shared.auth.ApiKeyCache) and the listener that keeps it honest
(shared.notifications): what it may serve, and every way it learns to stop serving."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from shared.auth import ApiKeyCache, Caller, hash_api_key
from shared.notifications import PostgresListener
from tests.fixtures.accounts import create_worker

CALLER = Caller(account_id="A1", kind="worker", key_id="K1")
HASH = hash_api_key("mk_example")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(*, listening: bool = True, ttl: float = 60.0) -> tuple[ApiKeyCache, FakeClock, dict]:
    clock = FakeClock()
    state = {"listening": listening}
    cache = ApiKeyCache(ttl_seconds=ttl, is_listening=lambda: state["listening"], clock=clock)
    return cache, clock, state


# --------------------------------------------------------------------------- the cache alone


def test_an_entry_is_served_until_its_age_runs_out() -> None:
    cache, clock, _ = make_cache(ttl=60)
    cache.store(HASH, CALLER, generation=cache.generation)
    assert cache.get(HASH) == CALLER
    clock.now += 59.9
    assert cache.get(HASH) == CALLER
    clock.now += 0.2
    assert cache.get(HASH) is None
    assert len(cache) == 0


def test_a_revocation_drops_the_entry() -> None:
    cache, _, _ = make_cache()
    cache.store(HASH, CALLER, generation=cache.generation)
    cache.forget("another key")
    assert cache.get(HASH) == CALLER
    cache.forget(CALLER.key_id)
    assert cache.get(HASH) is None


def test_a_lookup_that_raced_a_revocation_is_not_stored() -> None:
    """The lookup read the key before the revocation committed; the notification was handled
    while the lookup was in flight: storing it now would serve a revoked key."""
    cache, _, _ = make_cache()
    began = cache.generation
    cache.forget(CALLER.key_id)  # the notification, for a key not cached yet
    cache.store(HASH, CALLER, generation=began)
    assert cache.get(HASH) is None
    cache.store(HASH, CALLER, generation=cache.generation)  # a lookup after it: fine
    assert cache.get(HASH) == CALLER


def test_nothing_is_served_or_stored_while_not_listening() -> None:
    cache, _, state = make_cache()
    cache.store(HASH, CALLER, generation=cache.generation)
    state["listening"] = False
    assert cache.get(HASH) is None
    cache.store(HASH, CALLER, generation=cache.generation)
    assert len(cache) == 0
    state["listening"] = True
    assert cache.get(HASH) is None


def test_zero_seconds_turns_caching_off() -> None:
    cache, _, _ = make_cache(ttl=0)
    cache.store(HASH, CALLER, generation=cache.generation)
    assert cache.get(HASH) is None


def test_a_full_cache_drops_its_oldest_entry() -> None:
    clock = FakeClock()
    cache = ApiKeyCache(ttl_seconds=60, is_listening=lambda: True, max_entries=3, clock=clock)
    callers = [Caller(account_id=f"A{i}", kind="worker", key_id=f"K{i}") for i in range(4)]
    for i, caller in enumerate(callers):
        cache.store(bytes([i]), caller, generation=cache.generation)
    assert len(cache) == 3
    assert cache.get(bytes([0])) is None
    assert [cache.get(bytes([i])) for i in (1, 2, 3)] == callers[1:]
    cache.forget("K0")  # its id mapping went with it
    assert len(cache) == 3


def test_last_use_is_stamped_once_a_minute() -> None:
    cache, clock, _ = make_cache(ttl=600)
    cache.store(HASH, CALLER, generation=cache.generation)  # the lookup just stamped it
    assert not cache.touch_due(HASH)
    clock.now += 60
    assert cache.touch_due(HASH)
    assert not cache.touch_due(HASH)
    clock.now += 59
    assert not cache.touch_due(HASH)


# --------------------------------------------------------------------------- against Postgres


async def _revoke_without_notification(db: asyncpg.Pool, key: str) -> None:
    """An UPDATE with triggers off (replica role): the one change the cache cannot hear of."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        revoked = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1", hash_api_key(key)
        )
        assert revoked == "UPDATE 1"


async def _wait_until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_known_key_is_answered_from_memory(
    apps: dict, workers_client: httpx.AsyncClient, tasks_client: httpx.AsyncClient, db
) -> None:
    """Proof that the lookup is skipped: a revocation the cache cannot hear of (triggers off)
    does not stop a cached key; a key never seen before is looked up and refused."""
    worker = await create_worker(workers_client)
    second = await create_worker(workers_client)
    assert (await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)).is_success
    await _revoke_without_notification(db, worker.api_key)
    await _revoke_without_notification(db, second.api_key)
    cached = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert cached.status_code == 200
    unseen = await tasks_client.get("/v1/workers/me/assignments", headers=second.headers)
    assert unseen.status_code == 401
    apps["tasks"].state.api_key_cache.clear()  # what an age-out does (unit-tested above)
    after = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert after.status_code == 401


async def test_a_revocation_in_another_process_reaches_the_cache_by_notification(
    apps: dict, workers_client: httpx.AsyncClient, tasks_client: httpx.AsyncClient, db
) -> None:
    """An operator's UPDATE in psql, not the API: the trigger reports it, and the key stops
    working here without this process doing anything."""
    worker = await create_worker(workers_client)
    cache: ApiKeyCache = apps["tasks"].state.api_key_cache
    assert (await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)).is_success
    assert cache.get(hash_api_key(worker.api_key)) is not None
    await db.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1", hash_api_key(worker.api_key)
    )
    await _wait_until(lambda: cache.get(hash_api_key(worker.api_key)) is None, seconds=5)
    resp = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert resp.status_code == 401


async def test_deleting_a_key_row_reaches_the_cache(
    apps: dict, workers_client: httpx.AsyncClient, tasks_client: httpx.AsyncClient, db
) -> None:
    worker = await create_worker(workers_client)
    cache: ApiKeyCache = apps["tasks"].state.api_key_cache
    assert (await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)).is_success
    await db.execute("DELETE FROM api_keys WHERE account_id = $1", worker.id)
    await _wait_until(lambda: cache.get(hash_api_key(worker.api_key)) is None, seconds=5)
    resp = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert resp.status_code == 401


async def test_a_lost_listening_connection_empties_the_cache_until_it_listens_again(
    apps: dict, workers_client: httpx.AsyncClient, tasks_client: httpx.AsyncClient, db
) -> None:
    """Terminate the listening backend (as a Postgres restart or a network cut would): a
    revocation sent meanwhile is never heard, so the cache must forget and not serve."""
    worker = await create_worker(workers_client)
    app = apps["tasks"]
    listener: PostgresListener = app.state.listener
    cache: ApiKeyCache = app.state.api_key_cache
    assert (await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)).is_success
    assert len(cache) > 0 and listener.connected
    old_pid = listener.backend_pid
    await db.execute("SELECT pg_terminate_backend($1)", old_pid)
    await _wait_until(lambda: listener.backend_pid not in (None, old_pid))
    assert listener.connected
    # A revocation whose notification fell into the gap (here: one never sent) must not be
    # served over: the entry from before the gap is gone.
    await _revoke_without_notification(db, worker.api_key)
    resp = await tasks_client.get("/v1/workers/me/assignments", headers=worker.headers)
    assert resp.status_code == 401
    # Caching resumes once listening again.
    other = await create_worker(workers_client)
    assert (await tasks_client.get("/v1/workers/me/assignments", headers=other.headers)).is_success
    assert cache.get(hash_api_key(other.api_key)) is not None


async def test_the_revoking_process_stops_accepting_the_key_before_it_answers(
    workers_client: httpx.AsyncClient,
) -> None:
    """Same process, same app: no waiting for the notification (it comes after the commit)."""
    worker = await create_worker(workers_client)
    key = (await workers_client.post("/v1/accounts/me/api-keys", headers=worker.headers)).json()
    headers = {"Authorization": f"Bearer {key['api_key']}"}
    for _ in range(3):
        assert (await workers_client.get("/v1/accounts/me", headers=headers)).is_success
        revoke = await workers_client.delete(
            f"/v1/accounts/me/api-keys/{key['id']}", headers=worker.headers
        )
        assert revoke.status_code == 204
        assert (await workers_client.get("/v1/accounts/me", headers=headers)).status_code == 401
        key = (await workers_client.post("/v1/accounts/me/api-keys", headers=worker.headers)).json()
        headers = {"Authorization": f"Bearer {key['api_key']}"}


async def _refused_after(client: httpx.AsyncClient, url: str, headers: dict) -> float:
    """Seconds until `url` refuses the key (polling; fails after 5 s)."""
    began = time.monotonic()
    while (resp := await client.get(url, headers=headers)).status_code != 401:
        assert resp.status_code == 200, resp.text
        assert time.monotonic() - began < 5, "the revocation never arrived"
        await asyncio.sleep(0.001)
    return time.monotonic() - began


async def test_revocations_reach_every_live_process_within_moments(live_services) -> None:
    """Real processes: revoke on workers; tasks and payments, which had the key cached, refuse
    it once Postgres has delivered the notification. 30 rounds; on an idle host the very next
    request is already refused, under load it may take a few milliseconds (the bound asserted
    here is only the test's patience, the bench prints the figure)."""
    urls = live_services.urls
    async with httpx.AsyncClient(timeout=10) as client:
        signup = await client.post(
            urls["workers"] + "/v1/accounts",
            json={"kind": "worker", "name": "Churner", "email": f"churn-{time.time_ns()}@ex.com"},
        )
        headers = {"Authorization": f"Bearer {signup.json()['api_key']}"}
        for _ in range(30):
            created = await client.post(
                urls["workers"] + "/v1/accounts/me/api-keys", headers=headers
            )
            key = created.json()
            other = {"Authorization": f"Bearer {key['api_key']}"}
            # Cached on both others first.
            assert (await client.get(urls["tasks"] + "/v1/work/projects", headers=other)).is_success
            assert (await client.get(urls["payments"] + "/v1/balance", headers=other)).is_success
            revoked = await client.delete(
                urls["workers"] + f"/v1/accounts/me/api-keys/{key['id']}", headers=headers
            )
            assert revoked.status_code == 204
            # The revoking service itself: at once.
            mine = await client.get(urls["workers"] + "/v1/accounts/me", headers=other)
            assert mine.status_code == 401
            await _refused_after(client, urls["tasks"] + "/v1/work/projects", other)
            await _refused_after(client, urls["payments"] + "/v1/balance", other)
