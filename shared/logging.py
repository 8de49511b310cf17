"""JSON logs carrying the request id, which travels on to peer services in `X-Request-ID`.

Headers are never logged: API keys and the internal token must not reach log files.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.ids import new_id
from shared.jsonutil import dumps

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SECRET_RE = re.compile(r"(mk_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")
_MIN_REGISTERED_SECRET = 8
_registered_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Mask this exact value (the internal token) wherever a log line would carry it."""
    if len(secret) >= _MIN_REGISTERED_SECRET:
        _registered_secrets.add(secret)


def mask_secrets(text: str) -> str:
    """API keys keep their visible prefix (to identify them) and lose the rest; registered
    secrets are replaced whole."""
    text = _SECRET_RE.sub(r"\1…", text)
    for secret in _registered_secrets:
        if secret in text:
            text = text.replace(secret, "[secret]")
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            # Defence in depth: mask anything shaped like an API key (or a registered secret)
            # that slipped into a message or a traceback.
            "msg": mask_secrets(record.getMessage()),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms"):
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exc"] = mask_secrets(self.formatException(record.exc_info))
        return dumps(entry).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we log requests ourselves


access_log = logging.getLogger("access")


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead on hot paths): request id in, log line out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if incoming and _REQUEST_ID_RE.match(incoming) else new_id()
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    },
                )
            request_id_var.reset(token)
