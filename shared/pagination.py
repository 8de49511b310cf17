"""Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.

Cursors are opaque to clients and stay an index range scan at any depth (no OFFSET walk): each
holds the sort key of the last item of its page. On the wire a cursor is
`<base64url(JSON [version, *key])>.<base64url(HMAC-SHA256 tag)>`, signed with a key derived
from the service's `internal_token` (every replica and service shares it). So:

- a cursor this API did not produce (tampered, truncated, made up, signed before a token
  rotation) is refused outright with 422 `invalid_cursor`, before any SQL runs;
- even a correctly signed cursor is checked again against the shapes a sort key may have
  (`CursorValue`): an integer within int64, an id (`[A-Za-z0-9_-]{1,64}`) or an RFC 3339
  timestamp, at most `MAX_KEY_PARTS` of them. Values of any other kind (floats, nested
  objects, NUL characters, huge numbers, long strings) never reach a query.

Services read `page.cursor` (the key list) exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select

from shared.errors import ValidationFailed

T = TypeVar("T")
R = TypeVar("R")

CURSOR_VERSION = 1
MAX_KEY_PARTS = 4
MAX_CURSOR_LENGTH = 512
_TAG_BYTES = 16  # 128-bit truncated HMAC-SHA256
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# RFC 3339 date-time (what the API prints: `2026-11-27T17:00:00Z`, with or without fraction).
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_B64_RE = re.compile(r"[A-Za-z0-9_-]+")
_KEY_DOMAIN = b"crowd-marketplace cursor signing key v1"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def invalid_cursor(msg: str = "invalid cursor") -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this API produced: start again from the first page.",
        code="invalid_cursor",
        errors=[{"loc": ["query", "cursor"], "msg": msg}],
    )


def cursor_signing_key(secret: str | bytes) -> bytes:
    """The key cursors are signed with, derived from a service secret (never the secret itself,
    so a cursor tag can tell nothing about the internal token)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _KEY_DOMAIN, hashlib.sha256).digest()


def _is_valid_part(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    if isinstance(value, str):
        if _ID_RE.fullmatch(value):
            return True
        if len(value) <= 40 and _TIMESTAMP_RE.fullmatch(value):
            try:
                datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
            except ValueError:
                return False
            return True
    return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not _B64_RE.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_cursor(key: Sequence[Any], signing_key: bytes) -> str:
    """A signed cursor for this sort key. A part of another kind is a bug in the endpoint
    (ValueError), found by its tests: the decoder would refuse it."""
    parts = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    if not 1 <= len(parts) <= MAX_KEY_PARTS or not all(_is_valid_part(v) for v in parts):
        raise ValueError(f"not a cursor key: {parts!r}")
    payload = orjson.dumps([CURSOR_VERSION, *parts])
    return f"{_b64(payload)}.{_b64(_tag(signing_key, payload))}"


def decode_cursor(cursor: str, signing_key: bytes) -> list[Any]:
    """The sort key a cursor holds; 422 `invalid_cursor` unless it is one this API signed,
    of a known version and shape."""
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise invalid_cursor()
    body, tag = cursor.split(".")
    try:
        payload = _unb64(body)
        presented = _unb64(tag)
    except (ValueError, binascii.Error):
        raise invalid_cursor() from None
    if not hmac.compare_digest(presented, _tag(signing_key, payload)):
        raise invalid_cursor()
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise invalid_cursor() from None
    if (
        not isinstance(value, list)
        or len(value) < 2
        or len(value) > MAX_KEY_PARTS + 1
        or type(value[0]) is not int
        or value[0] != CURSOR_VERSION
        or not all(_is_valid_part(v) for v in value[1:])
    ):
        raise invalid_cursor()
    return value[1:]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: list[Any] | None
    signing_key: bytes = field(default=b"", repr=False)

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than the page, to know whether another page exists."""
        return self.limit + 1

    def page(
        self, rows: Sequence[R], key: Callable[[R], Sequence[Any]]
    ) -> tuple[list[R], str | None]:
        """Cut the extra row off and build the next cursor from the last row kept."""
        items = list(rows[: self.limit])
        next_cursor = (
            encode_cursor(key(items[-1]), self.signing_key)
            if len(rows) > self.limit and items
            else None
        )
        return items, next_cursor

    @property
    def before(self) -> str | None:
        """For a list keyed by one id, newest first: the id this page starts below (None: the
        first page)."""
        return str(self.cursor[0]) if self.cursor else None

    def page_by_id(self, rows: Sequence[R]) -> tuple[list[R], str | None]:
        """`page` for a list keyed by its rows' `id`."""
        return self.page(rows, lambda r: [r.id])  # type: ignore[attr-defined]


def newest_first(
    stmt: Select[Any], id_column: ColumnElement[Any], *, before_id: Any, limit: int
) -> Select[Any]:
    """`stmt` as a page keyed by `id_column`, highest first, below `before_id` (unless None)."""
    stmt = stmt.order_by(id_column.desc()).limit(limit)
    return stmt if before_id is None else stmt.where(id_column < before_id)


def app_signing_key(request: Request) -> bytes:
    """The app's cursor key, derived once from its settings' internal token."""
    state = request.app.state
    key = getattr(state, "cursor_signing_key", None)
    if key is None:
        key = cursor_signing_key(state.settings.internal_token.get_secret_value())
        state.cursor_signing_key = key
    return key


async def page_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="From next_cursor (opaque; 422 invalid_cursor if altered).",
        ),
    ] = None,
) -> PageParams:
    key = app_signing_key(request)
    return PageParams(
        limit=limit, cursor=decode_cursor(cursor, key) if cursor else None, signing_key=key
    )


PageDep = Annotated[PageParams, Depends(page_params)]
