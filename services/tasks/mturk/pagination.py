"""MTurk pagination: `MaxResults` (1-100) in, `NextToken` out (absent on the last page),
`NumResults` always.

A NextToken is opaque to the client and signed by us: base64url(JSON position) + "." + an
HMAC-SHA256 of (operation, requester, position) under a key derived from the service's internal
token. So a token cannot be forged or moved to another requester's listing or another operation,
and the position inside (whatever the op keys its listing on: usually the last id shown) can be
trusted by the SQL that continues after it.

The op's part, keyset-style:

    page = page_request(call)                       # limit and the decoded position (or None)
    rows = await repo.list_after(db, ..., after=page.after, limit=page.limit + 1)
    return page_result(call, "HITs", rows, page, position=lambda r: r.id, render=hit_shape)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.registry import MTurkCall
from shared.jsonutil import dumps, loads

T = TypeVar("T")

MAX_RESULTS_LIMIT = 100
DEFAULT_MAX_RESULTS = 10
_TOKEN_MAX_CHARS = 255  # the model's PaginationToken max
_SIG_BYTES = 16


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: Any | None
    """The position the previous page ended at (a JSON value the op chose), None on page 1."""


def _signing_key(call: MTurkCall) -> bytes:
    secret = call.settings.internal_token.get_secret_value().encode()
    return hmac.new(secret, b"mturk-next-token-v1", hashlib.sha256).digest()


def _signature(key: bytes, call: MTurkCall, payload: bytes) -> bytes:
    message = f"{call.operation}\n{call.requester_id}\n".encode() + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_SIG_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(call: MTurkCall, position: Any) -> str:
    payload = dumps(position)
    token = f"{_b64(payload)}.{_b64(_signature(_signing_key(call), call, payload))}"
    if len(token) > _TOKEN_MAX_CHARS:  # the op's position is too large: a programming error
        raise ValueError(f"NextToken for {call.operation} longer than {_TOKEN_MAX_CHARS}")
    return token


def decode_token(call: MTurkCall, token: str) -> Any:
    """The position inside a token this requester got from this operation; a RequestError for
    anything else (forged, truncated, another requester's, another operation's)."""
    try:
        payload_text, signature_text = token.split(".", 1)
        payload = _unb64(payload_text)
        signature = _unb64(signature_text)
    except (ValueError, TypeError) as exc:
        raise _invalid_token() from exc
    expected = _signature(_signing_key(call), call, payload)
    if not hmac.compare_digest(signature, expected):
        raise _invalid_token()
    try:
        return loads(payload)
    except Exception as exc:  # a signed payload always parses; belt and braces
        raise _invalid_token() from exc


def _invalid_token() -> MTurkRequestError:
    return MTurkRequestError("The pagination token is invalid.", "AWS.ParameterOutOfRange")


def page_request(call: MTurkCall, *, default: int = DEFAULT_MAX_RESULTS) -> PageRequest:
    """The page the client asked for. `MaxResults` has been range-checked (1-100) by the
    protocol's validation already; checked again here so an op cannot be handed more."""
    limit = call.params.get("MaxResults", default)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS_LIMIT:
        raise MTurkRequestError(
            f"Value '{limit}' at 'MaxResults' failed to satisfy constraint: "
            f"Member must have value between 1 and {MAX_RESULTS_LIMIT}.",
            "AWS.ParameterOutOfRange",
        )
    token = call.params.get("NextToken")
    after = decode_token(call, token) if token else None
    return PageRequest(limit=limit, after=after)


def page_result(
    call: MTurkCall,
    results_key: str,
    rows: Sequence[T],
    page: PageRequest,
    *,
    position: Callable[[T], Any],
    render: Callable[[T], dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The list output: `rows` is what the op fetched with `limit + 1` (one more than shown
    tells whether a next page exists without a count). `NextToken` only when it does."""
    shown = list(rows[: page.limit])
    output: dict[str, Any] = dict(extra or {})
    output["NumResults"] = len(shown)
    output[results_key] = [render(row) for row in shown]
    if len(rows) > page.limit and shown:
        output["NextToken"] = encode_token(call, position(shown[-1]))
    return output
