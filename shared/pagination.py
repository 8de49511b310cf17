"""Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.

Cursors are opaque (base64url of a small JSON array holding the sort key of the last item), so
listing stays an index range scan at any depth instead of an OFFSET walk.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query
from pydantic import BaseModel

from shared.errors import ValidationFailed

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except Exception as exc:
        raise ValidationFailed(
            "The cursor is not one this API produced.",
            code="invalid_cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        ) from exc
    if not isinstance(value, list) or not value:
        raise ValidationFailed(
            "The cursor is not one this API produced.",
            code="invalid_cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return value


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: list[Any] | None

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than the page, to know whether another page exists."""
        return self.limit + 1

    def page(
        self, rows: Sequence[R], key: Callable[[R], Sequence[Any]]
    ) -> tuple[list[R], str | None]:
        """Cut the extra row off and build the next cursor from the last row kept."""
        items = list(rows[: self.limit])
        next_cursor = encode_cursor(key(items[-1])) if len(rows) > self.limit and items else None
        return items, next_cursor


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="From next_cursor.")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageParams, Depends(page_params)]
