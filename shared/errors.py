"""One error hierarchy for every service, rendered as RFC 9457 problem+json.

Services raise `AppError` subclasses; a single set of handlers (installed by
`install_error_handlers`) turns them, FastAPI's validation errors, unknown routes and
unexpected exceptions into the same shape, so clients branch on a stable `code`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SQLAlchemyPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.eligibility import Comparator, Guard
from shared.jsonutil import dumps

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("errors")


class ProblemItem(BaseModel):
    loc: list[str | int]
    msg: str


class ProblemUnmetRequirement(BaseModel):
    """One qualification requirement the caller does not meet (`not_qualified`)."""

    qualification_type_id: str
    comparator: Comparator
    values: list[int | str]
    actual: int | str | None = Field(description="The caller's value; null when it has none.")
    reason: str
    guard: Guard


class Problem(BaseModel):
    """The body of every error response (documented in each route's `responses=`).

    Besides the RFC 9457 members, some codes carry extra members (the `extra=` of the error
    raised); each is listed here, absent unless the code says otherwise."""

    type: str = Field(examples=["about:blank"])
    title: str
    status: int
    detail: str
    code: str
    errors: list[ProblemItem] | None = Field(
        default=None, description="validation_error (and others): each field that failed."
    )
    retry_after: int | None = Field(
        default=None,
        description="Seconds to wait before retrying, as the Retry-After header says "
        "(rate_limited; retry_not_allowed, where null means no retake is ever allowed).",
    )
    retry_allowed_at: datetime | None = Field(
        default=None,
        description="retry_not_allowed: when a retake is allowed (null: never).",
    )
    unmet_requirements: list[ProblemUnmetRequirement] | None = Field(
        default=None, description="not_qualified: every requirement the caller does not meet."
    )
    min_gold_accuracy: int | None = Field(
        default=None, description="gold_accuracy_too_low: the project's minimum (percent)."
    )
    gold_answered: int | None = Field(
        default=None, description="gold_accuracy_too_low: the caller's gold answers so far."
    )
    gold_correct: int | None = Field(
        default=None, description="gold_accuracy_too_low: how many of them were correct."
    )
    attempt_id: str | None = Field(
        default=None,
        description="attempt_in_progress, request_pending: the attempt in question.",
    )
    deadline: datetime | None = Field(
        default=None, description="attempt_in_progress: that attempt's deadline."
    )
    held_cents: int | None = Field(
        default=None, description="reservation_exhausted: the cents the reservation holds."
    )
    needed_cents: int | None = Field(
        default=None, description="reservation_exhausted: the cents needed."
    )
    reference: str | None = Field(
        default=None, description="conflicting_transaction: what the transaction settles."
    )
    key: str | None = Field(
        default=None, description="idempotency_key_reused (ledger): the key in question."
    )
    session_id: str | None = Field(
        default=None,
        description="session_already_open: the worker's open session; session_ended: the "
        "session in question.",
    )
    ended_reason: str | None = Field(
        default=None, description="session_ended: why the session ended (e.g. `idle`)."
    )
    max_active_api_keys: int | None = Field(
        default=None, description="too_many_api_keys: the most active keys an account may hold."
    )


class AppError(Exception):
    """Base of every error a service raises on purpose; carries HTTP status and stable code."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        errors: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}
        self.errors = list(errors) if errors is not None else None
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad Request"


class MalformedJSON(BadRequest):
    code = "malformed_json"


class JSONTooDeep(BadRequest):
    """JSON nested past the kit's limit: refused before any parser or serializer recurses."""

    code = "json_too_deep"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class InsufficientFunds(AppError):
    status, code, title = 402, "insufficient_funds", "Insufficient Funds"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not Found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload Too Large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "Unprocessable Content"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too Many Requests"


class HeadersTooLarge(AppError):
    status, code, title = 431, "headers_too_large", "Request Header Fields Too Large"


class DependencyUnavailable(AppError):
    status, code, title = 503, "dependency_unavailable", "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kw)


# Each status's class: the direct subclasses of AppError above, one per status.
_STATUS_CLASS: dict[int, type[AppError]] = {cls.status: cls for cls in AppError.__subclasses__()}


def error_for_status(
    status: int, code: str, detail: str, extra: dict[str, Any] | None = None
) -> AppError:
    """Rebuild an error received from a peer service, keeping its status and code."""
    cls = _STATUS_CLASS.get(status, AppError)
    err = cls(detail, code=code, extra=extra)
    if cls is AppError:
        err.status = status
    return err


def problem_response(err: AppError) -> Response:
    return Response(
        content=dumps(err.body()),
        status_code=err.status,
        media_type=PROBLEM_JSON,
        headers=err.headers,
    )


def error_responses(*errors: type[AppError] | int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for a route: each status it can answer with, as a Problem body."""
    out: dict[int | str, dict[str, Any]] = {}
    for e in errors:
        status = e if isinstance(e, int) else e.status
        title = _STATUS_CLASS[status].title if status in _STATUS_CLASS else str(status)
        out[status] = {
            "model": Problem,
            "description": title,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def _validation_items(exc: RequestValidationError) -> Iterable[dict[str, Any]]:
    for e in exc.errors():
        yield {
            "loc": [str(x) if not isinstance(x, int) else x for x in e.get("loc", ())],
            "msg": str(e.get("msg", "invalid")),
        }


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if isinstance(exc, DependencyUnavailable):
        # A dependency down (a peer service, the database under a hot-path request): one
        # WARNING line, as for the database errors below, never a traceback.
        cause = exc.__cause__
        log.warning(
            "%s%s",
            exc.detail,
            f" ({describe_error(cause)})" if cause is not None else "",
            extra={"method": request.method, "path": request.url.path, "status": exc.status},
        )
    return problem_response(exc)


# What FastAPI raises (as a 400 HTTPException) when the JSON parser itself fails: invalid UTF-8,
# nesting past the parser's recursion limit, numbers it cannot hold.
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def is_json_media_type(content_type: str | None) -> bool:
    """application/json and the structured-syntax `+json` types (RFC 6839)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _sent_a_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return bool(request.headers.get("transfer-encoding")) or (
        length is not None and length.strip() not in ("", "0")
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return problem_response(MalformedJSON("The request body is not valid JSON."))
    # A JSON endpoint sent a body of another type (FastAPI does not parse it, so every body
    # field looks missing): say what is wrong with the request instead of listing fields.
    # 415 whatever the body says, so a client learns to fix the header first.
    if (
        _sent_a_body(request)
        and not is_json_media_type(request.headers.get("content-type"))
        and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())
    ):
        return problem_response(
            UnsupportedMediaType(
                "This endpoint takes a JSON body: send it with Content-Type: application/json."
            )
        )
    items = list(_validation_items(exc))
    detail = "; ".join(f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in items[:5])
    return problem_response(ValidationFailed(detail or "Invalid request.", errors=items))


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
        return problem_response(
            MalformedJSON("The request body is not valid JSON (or not UTF-8, or too deep).")
        )
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    detail = str(exc.detail)
    if exc.status_code == 404 and len(request.url.path) > 1 and request.url.path.endswith("/"):
        # Trailing-slash redirects are off (they reflected the Host header): say why.
        detail = "Not Found: paths take no trailing slash."
    err = AppError(detail, code=codes.get(exc.status_code, f"http_{exc.status_code}"))
    err.status = exc.status_code
    err.title = str(exc.detail)
    if exc.headers:
        err.headers = dict(exc.headers)
    return problem_response(err)


def _hide_statement_parameters(exc: BaseException) -> None:
    """SQLAlchemy errors print their bound parameters (a key's hash, an email) in str(exc);
    hide them before the traceback is logged here or, re-raised, by the server."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if hasattr(current, "hide_parameters"):
            current.hide_parameters = True  # type: ignore[attr-defined]
        current = current.__cause__ or current.__context__


def _database_unreachable(exc: BaseException) -> bool:
    """True when the error chain says the database connection is gone, refused or out of room:
    that is a dependency being down (503, retry), not a bug (500)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current,
            (
                ConnectionError,
                TimeoutError,
                asyncpg.PostgresConnectionError,
                asyncpg.ConnectionDoesNotExistError,
                asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError,
                asyncpg.TooManyConnectionsError,
                SQLAlchemyPoolTimeout,
            ),
        ):
            return True
        if isinstance(current, OSError) and current.errno is not None:
            return True
        if isinstance(current, asyncpg.InternalClientError):
            # "cannot switch to state N; another operation (M) is in progress": a statement
            # sent on a pooled connection while its protocol is handling the server's
            # "terminating connection" (a Postgres restart, seen in CI on the rate limiter's
            # statement in authentication). The same words from two tasks sharing one
            # connection would be a bug; none does (every request and loop takes its own), and
            # the 503 is still logged with the message.
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def is_database_outage(exc: BaseException) -> bool:
    """The database is down, restarting or out of connections (an expected outage): for the
    background loops, which log it as one WARNING line instead of a traceback."""
    return _database_unreachable(exc)


DATABASE_RETRY_AFTER_SECONDS = 2


def describe_error(exc: BaseException) -> str:
    """`Type: message` on one line, short (no traceback, no statement parameters)."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _dependency_down_response(request: Request, what: str, exc: BaseException) -> Response:
    log.warning(
        "%s unavailable, answered 503: %s",
        what,
        describe_error(exc),
        extra={"method": request.method, "path": request.url.path, "status": 503},
    )
    return problem_response(
        DependencyUnavailable(
            f"The {what} is unavailable; retry shortly.",
            retry_after=DATABASE_RETRY_AFTER_SECONDS,
        )
    )


async def _dependency_error_handler(request: Request, exc: Exception) -> Response:
    """Database and network errors, answered where the route's other errors are (Starlette's
    ExceptionMiddleware), so an outage is an ordinary response: 503 with Retry-After, one
    WARNING line, the access log says 503, and the client's keep-alive connection stays
    usable. The same exception types raised by a bug (a constraint violation, a bad statement)
    go on to `_unexpected_handler` (500, traceback) exactly as before."""
    _hide_statement_parameters(exc)
    if _database_unreachable(exc):
        return _dependency_down_response(request, "database", exc)
    raise exc


async def _peer_unreachable_handler(request: Request, exc: Exception) -> Response:
    """A peer service that cannot be reached (shared.http turns its own calls' failures into
    DependencyUnavailable; this covers any other httpx call)."""
    return _dependency_down_response(request, "peer service", exc)


# The exception types whose handler decides between "a dependency is down" (503) and a bug.
DEPENDENCY_ERROR_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, TimeoutError (asyncpg's acquire/connect timeouts), ...
    asyncpg.PostgresError,  # connection errors, admin shutdown, too many connections
    asyncpg.InterfaceError,  # connection closed mid-request
    asyncpg.InternalClientError,  # protocol busy with a server's goodbye
    SQLAlchemyError,  # DBAPIError with connection_invalidated, the pool's timeout
)


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    """Last resort (Starlette's ServerErrorMiddleware, which re-raises to the server afterwards:
    the connection is closed). Dependency failures normally never get here (see
    _dependency_error_handler); one that does (raised by a middleware) still answers 503."""
    _hide_statement_parameters(exc)
    if _database_unreachable(exc):
        log.warning("database unavailable: %s", describe_error(exc))
        return problem_response(
            DependencyUnavailable(
                "The database is unavailable; retry shortly.",
                retry_after=DATABASE_RETRY_AFTER_SECONDS,
            )
        )
    log.exception("unhandled error", exc_info=exc)
    return problem_response(AppError("An unexpected error occurred."))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    for exc_type in DEPENDENCY_ERROR_TYPES:
        app.add_exception_handler(exc_type, _dependency_error_handler)
    app.add_exception_handler(httpx.TransportError, _peer_unreachable_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
