"""The AWS JSON 1.1 protocol of the door: one POST, the operation in `X-Amz-Target`.

A call goes: read the raw body (bounded) -> parse the target -> authenticate (SigV4,
auth.py) -> find the operation (unknown: `UnknownOperationException`) -> parse JSON ->
validate against the model (validation.py) -> for a write with `amz-sdk-invocation-id`,
claim it or replay the first response (idempotency.py) -> run the handler -> serialize its
output (datetimes as epoch seconds) as `application/x-amz-json-1.1`.

Errors are the model's: `RequestError` (400) and `ServiceFault` (500), each with `Message` and
`TurkErrorCode`, so `client.exceptions.RequestError` catches them. A native `AppError` raised
by a service function an op calls becomes a RequestError (4xx) or a ServiceFault (5xx) with its
message; anything unexpected is logged and answered as a ServiceFault without details.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from services.tasks.clock import app_clock
from services.tasks.mturk import idempotency
from services.tasks.mturk.auth import MTurkAuthError, authenticate
from services.tasks.mturk.errors import (
    PARAMETER_VALIDATION,
    MTurkError,
    MTurkRequestError,
    MTurkServiceFault,
    UnknownOperation,
)
from services.tasks.mturk.registry import MTurkCall, get_operation
from services.tasks.mturk.validation import service_model, validate_input
from shared.errors import AppError, RateLimited
from shared.ids import new_id
from shared.jsonutil import dumps, loads

log = logging.getLogger("mturk")

TARGET_PREFIX = "MTurkRequesterServiceV20170117."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 512 * 1024
"""The door's own body limit (a Question is at most 64 KB; 8 times that leaves room for the
rest): larger is a RequestError. Bodies beyond the service-wide `max_body_bytes` are refused
by the kit's size middleware first, in this protocol's shape too (X-Amz-Target)."""


class MTurkThrottled(Exception):
    """Over the account's request budget: AWS JSON's `ThrottlingException` (HTTP 400), which
    botocore retries with backoff (Amazon answers MTurk's throttling the same way, to our best
    knowledge)."""

    status_code = 400

    def __init__(self, retry_after: str | None) -> None:
        super().__init__("Rate exceeded")
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"__type": "ThrottlingException", "message": "Rate exceeded"}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not serializable: {type(value).__name__}")


def _serialize(output: dict[str, Any]) -> bytes:
    """orjson would write datetimes as ISO strings; the JSON protocol wants epoch seconds."""
    return dumps(_epochs(output))


def _epochs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _epochs(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_epochs(v) for v in value]
    if isinstance(value, datetime | date | Decimal):
        return _json_default(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError("non-finite number in output")
    return value


def _with_num_results(operation: str, output: dict[str, Any]) -> dict[str, Any]:
    """`NumResults` is always present on a list output (clients read it before the list):
    the count of the output's one list member when an operation left it out."""
    shape = service_model().operation_model(operation).output_shape
    if shape is None or "NumResults" not in shape.members or "NumResults" in output:
        return output
    lists = [n for n, m in shape.members.items() if m.type_name == "list"]
    count = len(output.get(lists[0]) or []) if len(lists) == 1 else 0
    return {**output, "NumResults": count}


def _response(status_code: int, body: bytes, request_id: str) -> Response:
    return Response(
        content=body,
        status_code=status_code,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise MTurkRequestError(
            f"The request body is larger than {MAX_BODY_BYTES} bytes.", PARAMETER_VALIDATION
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise MTurkRequestError(
                f"The request body is larger than {MAX_BODY_BYTES} bytes.", PARAMETER_VALIDATION
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _operation_name(request: Request) -> str:
    target = request.headers.get("x-amz-target", "")
    if not target.startswith(TARGET_PREFIX) or len(target) > 200:
        raise UnknownOperation(target or "(no X-Amz-Target)")
    return target[len(TARGET_PREFIX) :]


def _parse(body: bytes) -> Any:
    if not body.strip():
        return {}
    if b"\\u0000" in body:  # PostgreSQL stores no NUL character
        raise MTurkRequestError(
            "The request body may not contain NUL characters.", PARAMETER_VALIDATION
        )
    try:
        return loads(body)
    except ValueError:
        raise MTurkRequestError(
            "The request body is not valid JSON.", PARAMETER_VALIDATION
        ) from None


def _from_app_error(exc: AppError) -> MTurkError:
    if exc.status >= 500:
        return MTurkServiceFault(exc.detail, "AWS.MechanicalTurk.ServiceUnavailable")
    return MTurkRequestError(exc.detail, "AWS.MechanicalTurk." + _camel(exc.code))


def _camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_"))


async def handle(request: Request) -> Response:
    """The whole door: never raises (every failure is an AWS-shaped response)."""
    request_id = new_id()
    claimed: idempotency.Claimed | None = None
    database = request.app.state.database
    try:
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return Response(status_code=400)
        name = _operation_name(request)
        # The signature's age is judged on the wall clock; the operation gets the app's clock
        # (services/tasks/clock.py), which a test may move.
        principal = await authenticate(request, database, body, datetime.now(UTC))
        now = app_clock(request)()
        # The door's calls count against the account's budget like its native requests
        # (shared.ratelimit: all of an account's keys and credentials together).
        try:
            await request.app.state.account_rate_limiter.check(principal.account_id)
        except RateLimited as exc:
            raise MTurkThrottled(exc.headers.get("Retry-After")) from exc
        operation = get_operation(name)
        if operation is None:
            raise UnknownOperation(name)
        params = validate_input(name, _parse(body))
        invocation_id = request.headers.get("amz-sdk-invocation-id")
        if operation.writes and invocation_id:
            outcome = await idempotency.begin_invocation(
                database,
                principal.account_id,
                invocation_id,
                idempotency.request_hash(name, body),
            )
            if isinstance(outcome, idempotency.Replay):
                return _response(outcome.status_code, outcome.body, request_id)
            claimed = outcome
        call = MTurkCall(
            requester_id=principal.account_id,
            operation=name,
            params=params,
            request=request,
            now=now,
            invocation_id=invocation_id,
            access_key_id=principal.access_key_id,
        )
        try:
            output = await operation.handler(call)
        except AppError as exc:
            raise _from_app_error(exc) from exc
        status_code, payload = 200, _serialize(_with_num_results(name, output))
    except (MTurkAuthError, MTurkThrottled) as exc:
        return _response(exc.status_code, dumps(exc.body()), request_id)
    except UnknownOperation as exc:
        return _response(400, dumps(exc.body()), request_id)
    except MTurkError as exc:
        status_code, payload = exc.status_code, dumps(exc.body())
    except Exception:
        log.exception("mturk operation failed (x-amzn-RequestId %s)", request_id)
        fault = MTurkServiceFault()
        status_code, payload = fault.status_code, dumps(fault.body())
    if claimed is not None:
        try:
            await idempotency.finish_invocation(database, claimed, status_code, payload)
        except Exception:  # the response still goes out; a retry will wait, then run again
            log.exception("could not store the mturk invocation's response")
    return _response(status_code, payload, request_id)
