"""Authentication, roles and mass assignment, checked on every route the apps declare."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from tests.fixtures.accounts import create_requester, create_worker
from tests.security.routes import FOREIGN_FORMATS, iter_routes

# Public endpoints that need no key (the contract: "anyone").
NO_KEY = {("workers", "POST", "/v1/accounts")}
# "anyone" reads that take a key when one is sent (an owner then sees more, e.g. answer keys):
# no key is the public view, a wrong key is still 401. Each must be listed here on purpose.
OPTIONAL_KEY = {
    ("workers", "GET", "/v1/qualification-types"),
    ("workers", "GET", "/v1/qualification-types/{type_id}"),
}


async def _call(clients: dict[str, httpx.AsyncClient], info, headers) -> httpx.Response:
    kwargs: dict = {"headers": headers}
    if info.method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = {}
    return await clients[info.service].request(info.method, info.url(), **kwargs)


@pytest.fixture
def clients(tasks_client, workers_client, payments_client) -> dict[str, httpx.AsyncClient]:
    return {"tasks": tasks_client, "workers": workers_client, "payments": payments_client}


async def test_every_public_route_requires_a_key(apps: dict, clients) -> None:
    checked = 0
    for info in iter_routes(apps):
        if info.path.startswith("/internal/") or (info.service, info.method, info.path) in NO_KEY:
            continue
        if info.auth == "optional":
            assert (info.service, info.method, info.path) in OPTIONAL_KEY, (
                f"{info.method} {info.path} accepts calls without a key: list it in OPTIONAL_KEY "
                "if the contract says anyone may call it"
            )
            resp = await _call(clients, info, {"Authorization": "Bearer mk_not-a-real-key"})
            assert resp.status_code == 401, (info.method, info.path, resp.status_code)
            checked += 1
            continue
        assert info.auth != "none", f"{info.method} {info.path} has no authentication"
        resp = await _call(clients, info, {})
        assert resp.status_code == 401, (info.method, info.path, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        checked += 1
    assert checked > 0


async def test_every_internal_route_requires_the_token_not_a_key(apps: dict, clients) -> None:
    worker = await create_worker(clients["workers"])
    for info in iter_routes(apps):
        if not info.path.startswith("/internal/"):
            continue
        assert info.auth == "internal", f"{info.method} {info.path} is not token-protected"
        for headers in ({}, worker.headers, {"X-Internal-Token": "wrong-token-wrong-token"}):
            resp = await _call(clients, info, headers)
            assert resp.status_code == 401, (info.method, info.path, headers, resp.status_code)


async def test_wrong_role_is_403_on_every_role_bound_route(apps: dict, clients) -> None:
    requester = await create_requester(clients["workers"])
    worker = await create_worker(clients["workers"])
    wrong = {"requester": worker, "worker": requester}
    checked = 0
    for info in iter_routes(apps):
        if info.auth not in wrong:
            continue
        resp = await _call(clients, info, wrong[info.auth].headers)
        assert resp.status_code == 403, (info.method, info.path, resp.status_code, resp.text)
        assert resp.json()["code"] == "wrong_role"
        checked += 1
    assert checked > 0


def test_every_request_body_model_refuses_unknown_fields(apps: dict) -> None:
    """Mass assignment: a client can never slip a field (a balance, a status) past a model."""
    lax = []
    for info in iter_routes(apps):
        if (info.method, info.path) in FOREIGN_FORMATS:
            continue  # another tool's file format: unknown fields ignored (see FOREIGN_FORMATS)
        for param in info.route.dependant.body_params:
            annotation = param.field_info.annotation
            models = [a for a in getattr(annotation, "__args__", (annotation,))]
            for model in models:
                if isinstance(model, type) and issubclass(model, BaseModel):
                    if model.model_config.get("extra") != "forbid":
                        lax.append(f"{info.method} {info.path}: {model.__name__}")
    assert not lax, "request models must set extra='forbid':\n" + "\n".join(lax)
