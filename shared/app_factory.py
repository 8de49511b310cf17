"""The parts every service's create_app() shares: errors, middleware, health, lifespan resources."""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import API_KEY_REVOKED_CHANNEL, ApiKeyCache
from shared.database import Database, ReadReplica, asyncpg_dsn, make_pool
from shared.errors import (
    PROBLEM_JSON,
    AppError,
    BadRequest,
    Conflict,
    DependencyUnavailable,
    HeadersTooLarge,
    JSONTooDeep,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    install_error_handlers,
    is_json_media_type,
    problem_response,
)
from shared.http import InternalClient, make_http_client
from shared.logging import RequestContextMiddleware, configure_logging, register_secret
from shared.metrics import RequestMetricsMiddleware, metrics_endpoint, metrics_lifespan
from shared.mturk_credentials import (
    MTURK_CREDENTIAL_REVOKED_CHANNEL,
    MTurkCredentialCache,
    secrets_key,
)
from shared.notifications import PostgresListener
from shared.ratelimit import SharedRateLimiter, TrustedProxies, open_rate_limits
from shared.settings import ServiceSettings
from shared.tracing import tracing_requested


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, checked on Content-Length and while streaming,
    so a huge body is refused without being read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes."
        if any(name == b"x-amz-target" for name, _ in scope["headers"]):
            # An AWS JSON call (the MTurk door, docs/mturk.md): answered in its protocol.
            response = Response(
                content=json.dumps(
                    {
                        "__type": "RequestError",
                        "Message": message,
                        "TurkErrorCode": "AWS.ParameterOutOfRange",
                    }
                ),
                status_code=400,
                media_type="application/x-amz-json-1.1",
            )
        else:
            response = problem_response(PayloadTooLarge(message))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


MAX_JSON_DEPTH = 64
"""Deepest JSON nesting a request may carry. Real payloads (task inputs, answers, answer
schemas) are a handful of levels deep; Python's json module recurses ~1,000 levels and orjson
serializes at most 254, so a deeper document would fail as a 500 somewhere in a service."""

_TEXT_UPLOAD_TYPES = frozenset(
    {"text/csv", "application/x-ndjson", "application/jsonl", "application/ndjson"}
)
# The bytes a JSON scan has to look at; everything else is skipped by the regex engine in C.
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\\x00\n]')
_NUL_ESCAPE = b"u0000"


# Whole JSON strings (escapes included), and every byte that is not a bracket or a newline:
# removing both leaves the bracket skeleton, from which depth is read with C-speed passes.
_JSON_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_NOT_SKELETON = bytes(b for b in range(256) if b not in b"[]{}\n")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def scan_json_text(body: bytes, *, max_depth: int, per_line: bool) -> tuple[str, int] | None:
    """The first reason to refuse a JSON (or, per_line, NDJSON) body, with its 1-based line.

    Three things no service can handle are refused: nesting deeper than `max_depth`, NUL
    characters (a raw 0x00 byte or the `\\u0000` escape), which PostgreSQL cannot store in
    text or jsonb, and non-finite numbers ("non_finite": the `NaN`, `Infinity` and `-Infinity`
    tokens Python's json parser accepts although JSON has no such values, and numbers too large
    for a double, which it reads as infinity). Syntax is not checked (the parsers do that); a
    broken line of NDJSON resets the state at its end so one bad line cannot poison the next.

    Fast path for the common case (about 10 ms for a 7 MB upload of 10,000 tasks, against 300 ms
    for the exact scan): no NUL in sight, and the bracket skeleton empties within `max_depth`
    rounds of deleting innermost pairs. Anything else (a NUL, an escaped backslash before
    "u0000", unbalanced or deep brackets) is decided by the exact scan. Non-finite numbers are
    looked for outside strings (the skeleton's first step), with one regex search.
    """
    outside_strings = _JSON_STRING.sub(b"", body)
    if b"\x00" in body or b"\\u0000" in body:
        found = _scan_json_exactly(body, max_depth=max_depth, per_line=per_line)
    else:
        found = _scan_depth(body, outside_strings, max_depth=max_depth, per_line=per_line)
    if found is not None:
        return found
    line = _non_finite_line(outside_strings)
    return None if line is None else ("non_finite", line)


def _scan_depth(
    body: bytes, outside_strings: bytes, *, max_depth: int, per_line: bool
) -> tuple[str, int] | None:
    skeleton = outside_strings.translate(None, _NOT_SKELETON).replace(b"\n", b"")
    for _ in range(max_depth):
        if not skeleton:
            return None
        shorter = _EMPTY_PAIR.sub(b"", skeleton)
        if len(shorter) == len(skeleton):
            break  # unbalanced (broken JSON or a broken NDJSON line): let the exact scan judge
        skeleton = shorter
    if not skeleton:
        return None
    return _scan_json_exactly(body, max_depth=max_depth, per_line=per_line)


# Outside strings, only these can make Python's json parser produce a non-finite float: the
# NaN/Infinity tokens, an exponent of 3 digits or more, or a run of 300+ digits. Looked for as
# plain substrings once every digit is a "0" (C-speed passes; a regex over every number of a
# large upload cost more than the rest of the scan), then decided exactly.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NON_FINITE_HINTS = (b"e000", b"E000", b"e+000", b"E+000", b"0" * 300)
_JSON_NUMBER_OR_NAME = re.compile(
    rb"NaN|Infinity|-?(?:0|[1-9][0-9]*)(?P<float>(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
)


def _non_finite_line(outside_strings: bytes) -> int | None:
    """The 1-based line of the first non-finite number (strings removed: JSON strings hold no
    raw newline, so line numbers are the body's)."""
    if b"NaN" not in outside_strings and b"Infinity" not in outside_strings:
        zeroed = outside_strings.translate(_DIGITS_TO_ZERO)
        if not any(hint in zeroed for hint in _NON_FINITE_HINTS):
            return None
    for match in _JSON_NUMBER_OR_NAME.finditer(outside_strings):
        fraction_or_exponent = match.group("float")  # None for NaN and Infinity
        if fraction_or_exponent is not None and (
            not fraction_or_exponent or math.isfinite(float(match.group()))
        ):
            continue  # an integer (Python keeps it exact), or a finite float
        return outside_strings.count(b"\n", 0, match.start()) + 1
    return None


def _scan_json_exactly(body: bytes, *, max_depth: int, per_line: bool) -> tuple[str, int] | None:
    """Byte-by-byte (over the interesting bytes only): exact, and slow on large bodies."""
    depth = 0
    in_string = False
    line = 1
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(body):
        pos = match.start()
        if pos == escaped_at:
            continue
        char = body[pos]
        if char == 0x00:
            return "nul", line
        if char == 0x0A:
            line += 1
            if per_line:
                depth, in_string = 0, False
            continue
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                if body.startswith(_NUL_ESCAPE, pos + 1):
                    return "nul", line
                escaped_at = pos + 1
            elif char == 0x22:
                in_string = False
            continue
        if char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return "deep", line
        elif char in (0x5D, 0x7D):
            depth = max(0, depth - 1)
    return None


def _body_refusal(media_type: str, body: bytes, max_depth: int) -> AppError | None:
    if media_type == "text/csv":
        nul = body.find(b"\x00")
        found = None if nul < 0 else ("nul", body.count(b"\n", 0, nul) + 1)
        per_line = True
    else:
        per_line = media_type in _TEXT_UPLOAD_TYPES
        found = scan_json_text(body, max_depth=max_depth, per_line=per_line)
    if found is None:
        return None
    reason, line = found
    loc: list[str | int] = ["line", line] if per_line else ["body"]
    if reason == "deep":
        return JSONTooDeep(
            f"JSON may be nested at most {max_depth} levels deep.",
            errors=[{"loc": loc, "msg": f"nested deeper than {max_depth} levels"}],
        )
    if reason == "non_finite":
        return ValidationFailed(
            "JSON numbers must be finite: NaN, Infinity, -Infinity and numbers beyond the range"
            " of a double are not accepted.",
            errors=[{"loc": loc, "msg": "not a finite number"}],
        )
    return ValidationFailed(
        "Text may not contain NUL characters (\\u0000).",
        errors=[{"loc": loc, "msg": "contains a NUL character"}],
    )


MAX_HEADER_BYTES = 16 * 1024
"""Total size of a request's header fields (names, values and their separators), as h11's
default limit; the httptools parser uvicorn prefers has none of its own."""


class RequestHygieneMiddleware:
    """Refuses, before any route runs, input that would otherwise crash a service deep inside:

    - request headers over `max_header_bytes` in total (431 headers_too_large);
    - a NUL character in the path (404: no object has such an id) or the query string (422),
      since PostgreSQL cannot compare or store it;
    - a JSON, NDJSON or CSV body with NUL characters (422), JSON nested past
      `max_json_depth` (400 json_too_deep) or, in JSON and NDJSON, non-finite numbers (422).

    Bodies of those types are read here (bounded by BodySizeLimitMiddleware, which must wrap this
    one) and handed on unchanged; the routes read them whole anyway. Other bodies stream through.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_json_depth: int = MAX_JSON_DEPTH,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_json_depth = max_json_depth
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        media_type = ""
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4  # "name: value\r\n"
            if name == b"content-type":
                media_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        if header_bytes > self.max_header_bytes:
            response = problem_response(
                HeadersTooLarge(
                    f"The request's header fields are larger than {self.max_header_bytes} bytes.",
                    code="headers_too_large",
                )
            )
            response.headers["Connection"] = "close"  # the body, if any, is not read
            await response(scope, receive, send)
            return
        refusal = self._refuse_target(scope)
        checked = refusal is None and (
            is_json_media_type(media_type) or media_type in _TEXT_UPLOAD_TYPES
        )
        if checked:
            body, receive = await _read_body(receive)
            refusal = _body_refusal(media_type, body, self.max_json_depth)
        if refusal is not None:
            await problem_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse_target(scope: Scope) -> AppError | None:
        if "\x00" in scope["path"]:
            return NotFound("Not Found")
        if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            return ValidationFailed(
                "Query parameters may not contain NUL characters.",
                errors=[{"loc": ["query"], "msg": "contains a NUL character"}],
            )
        return None


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it on as one message, then the real stream."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


# Errors the kit itself may answer on any route, so each operation's OpenAPI document lists
# them without every route repeating them (schemathesis checks responses against it).
_KIT_ERRORS_WITH_KEY: tuple[type[AppError], ...] = (Unauthorized, RateLimited)
_KIT_ERRORS_WITH_BODY: tuple[type[AppError], ...] = (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)


# Statuses whose answers carry Retry-After (seconds): rate limited, a dependency down.
_RETRY_AFTER_STATUSES = frozenset({"429", "503"})
_RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
# The one operation that touches no database (the process is up): every other may answer 503.
_NO_DATABASE_PATHS = frozenset({"/healthz"})


def _problem_response_doc(err: type[AppError]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "description": err.title,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if str(err.status) in _RETRY_AFTER_STATUSES:
        doc["headers"] = {"Retry-After": _RETRY_AFTER_HEADER}
    return doc


def document_kit_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to each operation the kit's own answers it does not document yet: 401/429 where a key
    is read, 400/413/415/422 where a body is, 422 where parameters are, 404 for path ids, 409
    where an Idempotency-Key is taken, 503 wherever the database is used (all but /healthz);
    say problem+json for every error response (that is what the handlers send), and
    Retry-After on every 429 and 503."""
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            params = operation.get("parameters", [])
            errors: list[type[AppError]] = []
            if operation.get("security"):
                errors += _KIT_ERRORS_WITH_KEY
            if "requestBody" in operation:
                errors += _KIT_ERRORS_WITH_BODY
            if params:
                errors.append(ValidationFailed)
            if any(p.get("in") == "path" for p in params):
                errors.append(NotFound)
            if any(p.get("name", "").lower() == "idempotency-key" for p in params):
                errors.append(Conflict)  # idempotency_key_reused
            if path not in _NO_DATABASE_PATHS:
                errors.append(DependencyUnavailable)
            responses = operation["responses"]
            for err in errors:
                responses.setdefault(str(err.status), _problem_response_doc(err))
            # Every error body is problem+json: FastAPI's own 422 entry (application/json,
            # HTTPValidationError) and `model=Problem` entries say application/json otherwise.
            for status, response in responses.items():
                if str(status)[:1] in ("4", "5") and isinstance(response, dict):
                    response["content"] = {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
                    if str(status) in _RETRY_AFTER_STATUSES:
                        response.setdefault("headers", {})["Retry-After"] = _RETRY_AFTER_HEADER
    _drop_unused_fastapi_schemas(schema)
    return schema


def _drop_unused_fastapi_schemas(schema: dict[str, Any]) -> None:
    """FastAPI's 422 body (HTTPValidationError, ValidationError) is replaced by Problem above:
    drop its components once nothing refers to them (a generated client would carry them)."""
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        if name in components:
            rest = {k: v for k, v in schema.items() if k != "components"}
            others = {k: v for k, v in components.items() if k != name}
            if f'"#/components/schemas/{name}"' not in json.dumps([rest, others]):
                del components[name]


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The database is reachable",
        responses={503: {"description": "database unreachable"}},
    )
    async def readyz(request: Request) -> Any:
        if await request.app.state.database.ready():
            return {"status": "ready"}
        return problem_response(
            DependencyUnavailable("The database is unreachable.", retry_after=2)
        )

    return router


@asynccontextmanager
async def base_lifespan(
    app: FastAPI, settings: ServiceSettings, service: str
) -> AsyncIterator[None]:
    """Open the database pools, the notification listener and the one shared httpx client;
    close them on shutdown."""
    database = Database(
        pool=await make_pool(
            settings.database_url, max_size=settings.db_pool_size, application_name=service
        ),
        hot_pool=await make_pool(
            settings.database_url,
            max_size=settings.db_driver_pool_size,
            application_name=service,
            hot=True,
        ),
        # The stale reads' replica, probed in the background until close().
        replica=None
        if settings.read_database_url is None
        else await ReadReplica.open(
            settings.read_database_url,
            max_size=settings.db_replica_pool_size,
            application_name=f"{service}-replica",
            max_lag_seconds=settings.read_replica_max_lag_seconds,
            probe_interval_seconds=settings.read_replica_probe_seconds,
        ),
    )
    listener = PostgresListener(
        asyncpg_dsn(settings.database_url), application_name=f"{service}-listen"
    )
    api_key_cache = ApiKeyCache(
        ttl_seconds=settings.api_key_cache_seconds, is_listening=lambda: listener.connected
    )
    listener.subscribe(
        API_KEY_REVOKED_CHANNEL, on_message=api_key_cache.forget, on_reset=api_key_cache.clear
    )
    # MTurk credentials (the tasks service's door verifies SigV4 with them; workers issues them).
    mturk_credential_cache = MTurkCredentialCache(
        ttl_seconds=settings.api_key_cache_seconds, is_listening=lambda: listener.connected
    )
    listener.subscribe(
        MTURK_CREDENTIAL_REVOKED_CHANNEL,
        on_message=mturk_credential_cache.forget,
        on_reset=mturk_credential_cache.clear,
    )
    await listener.start()
    # Counters shared by every replica (shared.ratelimit), on connections of their own.
    rate_limits = await open_rate_limits(app.state, settings.database_url, service)
    # An app may be handed a transport before its lifespan starts (app.state.peer_transport):
    # the tests' in-process mesh of the three services.
    http = make_http_client(
        settings.http_timeout_seconds, transport=getattr(app.state, "peer_transport", None)
    )
    if getattr(app.state, "tracer_provider", None) is not None:
        from shared.tracing import instrument_http_client

        instrument_http_client(http, app.state.tracer_provider)
    token = settings.internal_token.get_secret_value()
    app.state.database = database
    app.state.listener = listener
    app.state.api_key_cache = api_key_cache
    app.state.mturk_credential_cache = mturk_credential_cache
    app.state.http = http
    app.state.peers = {
        "tasks": InternalClient(http, settings.tasks_url, token, "tasks"),
        "workers": InternalClient(http, settings.workers_url, token, "workers"),
        "payments": InternalClient(http, settings.payments_url, token, "payments"),
    }
    _settle_garbage_collector()
    try:
        async with metrics_lifespan(
            database, service, interval_seconds=settings.metrics_sample_seconds
        ):
            yield
    finally:
        await http.aclose()
        await listener.close()
        await rate_limits.close()
        await database.close()


def _settle_garbage_collector() -> None:
    """What exists once the app has started (routes, pydantic and SQLAlchemy models, most of the
    heap) lives as long as the process: frozen out of the collector's view, so its collections
    stop walking it on every pass (they took ~8% of the tasks service's time under the bench's
    load). Requests allocate many short-lived objects; a larger first generation lets most die
    by reference counting before a collection looks at them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def build_app(
    *,
    service: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    configure_logging(service, settings.log_level)
    register_secret(settings.internal_token.get_secret_value())
    if settings.mturk_secrets_key is not None:
        register_secret(settings.mturk_secrets_key.get_secret_value())

    @asynccontextmanager
    async def lifespan_all(app: FastAPI) -> AsyncIterator[None]:
        async with base_lifespan(app, settings, service):
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan_all,
        generate_unique_id_function=_operation_id_for(service),
        # No trailing-slash redirects: Starlette builds their Location from the Host header
        # (an open redirect through a misrouted Host); a path with a slash too many is a 404.
        redirect_slashes=False,
    )
    app.state.settings = settings
    # Checked at start (a malformed MTURK_SECRETS_KEY fails loudly here, not per request).
    app.state.mturk_secrets_key = secrets_key(
        None
        if settings.mturk_secrets_key is None
        else settings.mturk_secrets_key.get_secret_value(),
        settings.internal_token.get_secret_value(),
    )
    app.state.account_rate_limiter = SharedRateLimiter(
        settings.account_rate_limit, scope=f"{service}:account"
    )
    app.state.signup_rate_limiter = SharedRateLimiter(
        settings.rate_limit_signup, scope=f"{service}:signup"
    )
    app.state.api_key_creation_rate_limiter = SharedRateLimiter(
        settings.rate_limit_api_key_creation, scope=f"{service}:api_key_creation"
    )
    app.state.trusted_proxies = TrustedProxies(settings.forwarded_allow_ips)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    _install_openapi_with_kit_errors(app)
    # Outermost first: request id and access log, then the size limit, then the hygiene checks
    # (which read JSON bodies whole, so the size limit must already wrap them).
    app.add_middleware(
        RequestHygieneMiddleware,
        max_json_depth=getattr(settings, "max_json_depth", MAX_JSON_DEPTH),
        max_header_bytes=getattr(settings, "max_header_bytes", MAX_HEADER_BYTES),
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    # Outermost: the latency measured includes every other middleware's work.
    app.add_middleware(RequestMetricsMiddleware, service=service)
    # Prometheus' scrape target: not in the OpenAPI document, not routed by the public gateway.
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    if tracing_requested():  # only then is OpenTelemetry imported at all
        from shared.tracing import instrument_app

        instrument_app(app, service)
    return app


def _operation_id_for(service: str) -> Callable[[APIRoute], str]:
    """The OpenAPI operationId of each route: its name (the endpoint function's, or `name=`),
    snake_case, unique across the three services for the public routes (checked by
    tests/test_openapi_documents.py); the kit's own and internal routes, which every service
    has or may share names in, are prefixed with the service (`tasks_readyz`). Stable: clients
    generated from the documents use them as method names (docs/api.md)."""

    def operation_id(route: APIRoute) -> str:
        return route.name if route.path.startswith("/v1/") else f"{service}_{route.name}"

    return operation_id


def _install_openapi_with_kit_errors(app: FastAPI) -> None:
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_kit_errors(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
