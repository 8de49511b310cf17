"""The operations the door serves: one handler per MTurk operation name.

An operation module (services/tasks/mturk/operations/*.py) registers its handlers with
`@mturk_operation("CreateHIT")`; the package imports every module so the decorators run before
the first request. The protocol layer (protocol.py) authenticates, validates `params` against the
botocore model's input shape, deduplicates retried writes, calls the handler and serializes what
it returns (the model's output shape as a dict: datetimes become epoch seconds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

if TYPE_CHECKING:
    from shared.database import Database
    from shared.http import InternalClient  # noqa: F401


@dataclass(frozen=True, slots=True)
class MTurkCall:
    """What every operation handler receives."""

    requester_id: str
    """The account the SigV4 credentials belong to (always a requester account)."""
    operation: str
    """The operation name, e.g. "CreateHIT"."""
    params: dict[str, Any]
    """The JSON body, validated against the model's input shape (types, required members,
    lengths, ranges and patterns)."""
    request: Request
    """The starlette request: `request.app.state` has settings, database, http client, clock."""
    now: datetime
    """The app's clock at the start of the call (services/tasks/clock.py), timezone-aware UTC."""
    invocation_id: str | None = None
    """The client's `amz-sdk-invocation-id` (the same on botocore's retries of one call)."""
    access_key_id: str = ""
    """The credential that signed the call (for logs and audits; never the secret)."""

    @property
    def database(self) -> Database:
        """The tasks service's database: `async with call.database.transaction() as db:` for a
        write, `.read()` for reads, `.autocommit(hot=True)` for the lifecycle's hot paths."""
        return self.request.app.state.database

    @property
    def settings(self) -> Any:
        return self.request.app.state.settings

    def idempotency_key(self, purpose: str) -> str:
        """A key for a downstream idempotent call (payments' Idempotency-Key) that is the same
        on the client's retries of this call: derived from the invocation id when the client
        sent one (botocore always does), else unique to this call."""
        from services.tasks.mturk.idempotency import downstream_key

        return downstream_key(self, purpose)


Handler = Callable[[MTurkCall], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    writes: bool
    """A write's response is stored against the client's invocation id and replayed for a
    retry of the same call (idempotency.py); reads (Get*/List*) are just run again."""


_OPERATIONS: dict[str, Operation] = {}


def mturk_operation(name: str, *, writes: bool | None = None) -> Callable[[Handler], Handler]:
    """Register `handler` for the operation `name` (the model's operation name).

    `writes` defaults to "not Get*/List*"."""

    def register(handler: Handler) -> Handler:
        from services.tasks.mturk.validation import model_operation_names

        if name not in model_operation_names():
            raise RuntimeError(f"{name} is not an operation of the MTurk 2017-01-17 model")
        if name in _OPERATIONS and _OPERATIONS[name].handler is not handler:
            raise RuntimeError(f"MTurk operation {name} registered twice")
        is_write = writes if writes is not None else not name.startswith(("Get", "List"))
        _OPERATIONS[name] = Operation(name=name, handler=handler, writes=is_write)
        return handler

    return register


def get_operation(name: str) -> Operation | None:
    return _OPERATIONS.get(name)


def registered_operations() -> dict[str, Operation]:
    return dict(_OPERATIONS)
