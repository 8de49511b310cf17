"""Walks the route tables of the three apps, so security tests cover new routes automatically."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from shared.auth import get_caller, require_internal

_PARAM = re.compile(r"\{([^}:]+)(:[^}]+)?\}")

# Bodies in another tool's file format, which carries many fields of its own: their models allow
# unknown fields, which are ignored, never assigned. Each entry names the test that proves it.
FOREIGN_FORMATS: dict[tuple[str, str], str] = {
    ("POST", "/v1/projects/{project_id}/label-studio/tasks"): (
        "tests/services/tasks/interop/test_label_studio_api.py::"
        "test_fields_label_studio_writes_are_ignored_never_assigned"
    ),
}


@dataclass(frozen=True)
class RouteInfo:
    service: str
    method: str
    path: str
    route: APIRoute
    auth: str  # "none" | "optional" | "any" | "requester" | "worker" | "internal"

    def url(self, value: str = "NOPE00000000000000000000AB") -> str:
        return _PARAM.sub(value, self.path)


# Dependencies that read a key when one is sent and allow none (the contract's "anyone" reads).
# Matched by name: the kit has no optional-key dependency yet (services/workers/auth.py has one).
OPTIONAL_KEY_DEPENDENCIES = frozenset({"get_optional_caller"})


def _auth_of(dependant: Dependant) -> str:
    found = "none"
    stack = [dependant]
    while stack:
        dep = stack.pop()
        call = dep.call
        kind = getattr(call, "required_kind", None)
        if kind:
            return kind
        if call is require_internal:
            return "internal"
        if call is get_caller:
            found = "any"
        if getattr(call, "__name__", None) in OPTIONAL_KEY_DEPENDENCIES and found == "none":
            found = "optional"
        stack.extend(dep.dependencies)
    return found


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(effective path, route) for every API route, through included routers."""
    try:  # FastAPI >= 0.16x includes routers lazily
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, route
        return
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute):
            yield ctx.path or route.path, route


def iter_routes(apps: dict[str, FastAPI]) -> Iterator[RouteInfo]:
    for service, app in apps.items():
        for path, route in api_routes(app):
            if not path.startswith(("/v1/", "/internal/")):
                continue
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                yield RouteInfo(service, method, path, route, _auth_of(route.dependant))
