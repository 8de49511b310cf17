"""The errors an MTurk client sees: the two shapes the 2017-01-17 model declares.

botocore's JSON protocol turns `{"__type": "RequestError", ...}` with HTTP 400 into
`client.exceptions.RequestError` (and `ServiceFault` at 500 into `ServiceFault`, which botocore
retries), so clients that match on `e.response["Error"]["Code"]` or on the exception class,
and on `TurkErrorCode`, keep working. These are not `shared.errors.AppError`s: the door never
renders problem+json, and an AppError raised by a service function the door calls is turned
into one of these by the protocol layer (protocol.py) with the same status class.
"""

from __future__ import annotations

from typing import Any


class MTurkError(Exception):
    """Base of the two errors; `type_name` is the model's shape name sent as `__type`."""

    type_name = "RequestError"
    status_code = 400

    def __init__(self, message: str, turk_error_code: str) -> None:
        super().__init__(message)
        self.message = message
        self.turk_error_code = turk_error_code

    def body(self) -> dict[str, Any]:
        return {
            "__type": self.type_name,
            "Message": self.message,
            "TurkErrorCode": self.turk_error_code,
        }


class MTurkRequestError(MTurkError):
    """The caller's fault (bad input, someone else's object, a state that forbids the call):
    HTTP 400 `RequestError`; nothing changed."""

    type_name = "RequestError"
    status_code = 400


class MTurkServiceFault(MTurkError):
    """Our fault, or a dependency's (payments unreachable): HTTP 500 `ServiceFault`, which
    botocore retries with the same `amz-sdk-invocation-id`."""

    type_name = "ServiceFault"
    status_code = 500

    def __init__(
        self,
        message: str = "We encountered an unexpected error. Please try again.",
        turk_error_code: str = "AWS.MechanicalTurk.InternalError",
    ) -> None:
        super().__init__(message, turk_error_code)


# TurkErrorCodes the door itself uses (Amazon's codes as clients have observed them; the op
# modules may use others of Amazon's).
PARAMETER_VALIDATION = "AWS.ParameterOutOfRange"
DUPLICATE_REQUEST = "AWS.MechanicalTurk.DuplicateRequest"
NOT_AUTHORIZED = "AWS.NotAuthorized"
DOES_NOT_EXIST = "AWS.MechanicalTurk.ResourceDoesNotExist"
BAD_NEXT_TOKEN = "AWS.ParameterOutOfRange"


def does_not_exist(what: str, ident: str) -> MTurkRequestError:
    """The one wording for a missing (or someone else's) object, e.g.
    `does_not_exist("HIT", hit_id)` gives "HIT XYZ does not exist."
    """
    return MTurkRequestError(
        f"{what} {ident} does not exist.",
        "AWS.MechanicalTurk.HITDoesNotExist" if what.upper() == "HIT" else DOES_NOT_EXIST,
    )


class UnknownOperation(Exception):
    """An `X-Amz-Target` that names no operation we serve: HTTP 400 with `__type`
    `UnknownOperationException` (what AWS JSON services answer), never a 5xx."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target

    def body(self) -> dict[str, Any]:
        message = f"Unknown operation {self.target}"
        return {"__type": "UnknownOperationException", "message": message}
