"""Service-to-service HTTP: one shared httpx client per service, token and request id on every call.

Failures are translated once, here: a peer that cannot be reached, times out or answers 5xx
becomes `DependencyUnavailable` (503 + Retry-After) for our caller; a peer's 4xx problem is
re-raised with the same status and code, so e.g. 402 insufficient_funds passes through.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import AppError, DependencyUnavailable, error_for_status
from shared.logging import request_id_var


def make_http_client(
    timeout_seconds: float = 5.0, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """`transport` replaces the network: the test harness runs the three apps in one process
    and routes their calls to each other through ASGI (tests/conftest.py `ServiceMesh`)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds, connect=min(2.0, timeout_seconds)),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        transport=transport,
    )


class InternalClient:
    """Calls one peer's `/internal/*` endpoints."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str, peer: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.peer = peer

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"X-Internal-Token": self.token}
        rid = request_id_var.get()
        if rid:
            headers["X-Request-ID"] = rid
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            resp = await self.client.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=self._headers(headers),
            )
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"The {self.peer} service is unavailable.") from exc
        if resp.status_code >= 500:
            raise DependencyUnavailable(f"The {self.peer} service failed ({resp.status_code}).")
        if resp.status_code >= 400:
            raise _peer_error(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.request("POST", path, **kw)


def _peer_error(resp: httpx.Response) -> AppError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    extra = {
        k: v
        for k, v in (body.items() if isinstance(body, dict) else ())
        if k not in {"type", "title", "status", "detail", "code", "errors"}
    }
    return error_for_status(
        resp.status_code, code or f"http_{resp.status_code}", detail or resp.reason_phrase, extra
    )
