"""Seeding through the public API: accounts with API keys, money by deposits, projects, tasks.

Tasks go in through the bulk upload endpoint in batches of 10,000 (the contract's maximum), also
for the 1,000,000-slot project: the endpoint is itself under test, and seeding through it keeps
every row exactly as the service writes it (claim ranks, expiry, reservations on publish).
Only figure 4's reference writes rows itself, with a raw COPY.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import orjson

T = TypeVar("T")

UPLOAD_BATCH = 10_000
MAX_DEPOSIT_CENTS = 10_000_000  # the test payment provider takes up to 100000.00 per deposit
LABELS = ["cat", "dog"]
ANSWER = {"label": "cat"}
REWARD = "0.01"
AUTO_APPROVE_SECONDS = 2_592_000  # the maximum: no auto-approval interferes with a run
PROJECT_TEMPLATE: dict[str, Any] = {
    "description": "Pick the animal that fills most of the photo.",
    "instructions": "# Guidelines\nLabel each photo as cat or dog. Skip nothing.",
    "keywords": ["image", "classification", "bench"],
    "task_type": "classification",
    "labels": LABELS,
    "reward": REWARD,
    "assignments_per_task": 1,
    "assignment_duration_seconds": 3_600,
    "lifetime_seconds": 31_536_000,
    "auto_approve_seconds": AUTO_APPROVE_SECONDS,
    "estimated_seconds_per_assignment": 10,
}


class SeedError(RuntimeError):
    pass


def task_input(project_tag: str, index: int) -> dict[str, Any]:
    """A realistic small input: an image to label plus the uploader's own reference."""
    return {
        "image_url": f"https://images.example.com/bench/{project_tag}/{index:07d}.jpg",
        "source": "bench",
        "batch": index // UPLOAD_BATCH,
    }


def task_rows(project_tag: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"input": task_input(project_tag, i), "external_id": f"{project_tag}-{i}"}
        for i in range(start, start + count)
    ]


async def bounded_gather(
    count: int, make: Callable[[int], Awaitable[T]], *, concurrency: int
) -> list[T]:
    """make(0..count-1) with at most `concurrency` in flight, results in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with semaphore:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


class Api:
    """A thin client of the public API for seeding (not timed, except the bulk upload)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(300.0, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        actor: dict[str, Any] | None = None,
        *,
        expect: int | Sequence[int] = (200, 201),
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if actor is not None:
            all_headers["Authorization"] = f"Bearer {actor['api_key']}"
        if json is not None:
            content = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        for attempt in range(5):
            resp = await self.client.request(
                method, self.urls[service] + path, content=content, headers=all_headers
            )
            if resp.status_code != 503 or attempt == 4:  # a peer restarting: retry shortly
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        allowed = (expect,) if isinstance(expect, int) else tuple(expect)
        if resp.status_code not in allowed:
            raise SeedError(f"{method} {path} -> {resp.status_code}: {resp.text[:600]}")
        return resp

    # ------------------------------------------------------------------ accounts and money

    async def sign_up(self, kind: str, tag: str) -> dict[str, Any]:
        resp = await self.call(
            "workers",
            "POST",
            "/v1/accounts",
            json={
                "kind": kind,
                "name": f"Bench {kind} {tag}",
                "email": f"bench-{kind}-{tag}-{uuid.uuid4().hex[:10]}@bench.example",
                "country": "US",
                "languages": ["en"],
            },
        )
        body = resp.json()
        return {"id": body["account"]["id"], "api_key": body["api_key"], "kind": kind}

    async def sign_up_many(self, kind: str, count: int) -> list[dict[str, Any]]:
        return await bounded_gather(count, lambda i: self.sign_up(kind, f"{i:04d}"), concurrency=16)

    async def deposit(self, requester: dict[str, Any], amount_cents: int) -> None:
        """Deposits of at most 100000.00 each, every one under its own idempotency key."""
        while amount_cents > 0:
            chunk = min(amount_cents, MAX_DEPOSIT_CENTS)
            await self.call(
                "payments",
                "POST",
                "/v1/deposits",
                requester,
                json={"amount": f"{chunk // 100}.{chunk % 100:02d}"},
                headers={"Idempotency-Key": "bench-deposit-" + secrets.token_hex(8)},
            )
            amount_cents -= chunk

    # ------------------------------------------------------------------ projects and tasks

    async def create_project(self, requester: dict[str, Any], title: str, **fields: Any) -> dict:
        body = {**PROJECT_TEMPLATE, "title": title, **fields}
        return (await self.call("tasks", "POST", "/v1/projects", requester, json=body)).json()

    async def upload(
        self, requester: dict[str, Any], project_id: str, rows: list[dict[str, Any]]
    ) -> tuple[float, dict[str, Any]]:
        """One bulk upload call; returns its wall time (body encoded beforehand) and answer."""
        body = orjson.dumps({"tasks": rows})
        started = time.perf_counter()
        resp = await self.call(
            "tasks",
            "POST",
            f"/v1/projects/{project_id}/tasks",
            requester,
            content=body,
            headers={"Content-Type": "application/json"},
            expect=201,
        )
        return time.perf_counter() - started, resp.json()

    async def upload_many(
        self, requester: dict[str, Any], project_id: str, tag: str, count: int
    ) -> float:
        """`count` tasks in batches of 10,000, one call at a time; returns the seconds taken."""
        started = time.perf_counter()
        for start in range(0, count, UPLOAD_BATCH):
            rows = task_rows(tag, start, min(UPLOAD_BATCH, count - start))
            await self.upload(requester, project_id, rows)
        return time.perf_counter() - started

    async def publish(self, requester: dict[str, Any], project_id: str) -> dict[str, Any]:
        return (
            await self.call("tasks", "POST", f"/v1/projects/{project_id}/publish", requester)
        ).json()

    async def published_project(
        self, requester: dict[str, Any], title: str, tasks: int, tag: str, **fields: Any
    ) -> dict[str, Any]:
        """Create, fill (bulk upload) and publish: the way a requester starts a batch."""
        project = await self.create_project(requester, title, **fields)
        await self.upload_many(requester, project["id"], tag, tasks)
        return await self.publish(requester, project["id"])

    async def published_hourly_project(
        self, requester: dict[str, Any], title: str, tag: str, *, budget_hours: int
    ) -> dict[str, Any]:
        """An hourly transcription project at 0.01/h (the cheapest rate, so a big budget costs
        little), an idle timeout of an hour (a bench's sessions never go idle between beats),
        one task, published: what the heartbeat figures open their sessions in."""
        return await self.published_project(
            requester,
            title,
            1,
            tag,
            task_type="transcription",
            labels=None,
            reward=None,
            pay_model="hourly",
            hourly_rate="0.01",
            budget_hours=budget_hours,
            idle_timeout_seconds=3_600,
        )

    async def open_work_session(
        self, worker: dict[str, Any], project: dict[str, Any]
    ) -> tuple[str, str]:
        """(the worker's API key, the id of their open session in the hourly project), retried
        when a keep-alive connection closes under the call (409 `session_already_open` then
        means an earlier try got through: that session is theirs)."""
        path = f"/v1/work/projects/{project['id']}/sessions"
        for attempt in range(5):
            try:
                resp = await self.call("tasks", "POST", path, worker, expect=(201, 409))
            except httpx.TransportError:
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            body = resp.json()
            if resp.status_code == 201:
                return worker["api_key"], body["id"]
            if body.get("code") == "session_already_open":
                return worker["api_key"], body["session_id"]
            raise RuntimeError(f"opening a session in {project['id']}: {resp.text[:300]}")
        raise RuntimeError(f"could not open a session in {project['id']}")
