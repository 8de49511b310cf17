"""Small factories that build test data through the public API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Actor:
    id: str
    kind: str
    api_key: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


async def create_account(
    workers_client: httpx.AsyncClient, kind: str = "worker", **fields: Any
) -> Actor:
    body = {
        "kind": kind,
        "name": fields.pop("name", f"Test {kind}"),
        "email": fields.pop("email", unique_email(kind)),
        **fields,
    }
    resp = await workers_client.post("/v1/accounts", json=body)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    return Actor(id=data["account"]["id"], kind=kind, api_key=data["api_key"], email=body["email"])


async def create_requester(workers_client: httpx.AsyncClient, **fields: Any) -> Actor:
    return await create_account(workers_client, "requester", **fields)


async def create_worker(workers_client: httpx.AsyncClient, **fields: Any) -> Actor:
    return await create_account(workers_client, "worker", **fields)
