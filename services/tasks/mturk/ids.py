"""One set of ids: the MTurk view shows native ids, with worker ids prefixed by "A".

HITTypeId = project id, HITId = task id, AssignmentId = assignment id, QualificationTypeId =
qualification type id: native ids are ULIDs (shared/ids.py), upper-case alphanumeric, so they
already satisfy MTurk's `^[A-Z0-9]+$`. A WorkerId must match `^A[A-Z0-9]+$`; a ULID starts with
a digit ("0".."7": its top bits are time), so "A" + account id is unambiguous and reversible.
Ids are accepted back in the same form and turned into native ids here, and nowhere else.
"""

from __future__ import annotations

import re

from services.tasks.mturk.errors import MTurkRequestError

MTURK_ID_PATTERN = re.compile(r"^[A-Z0-9]+$")
WORKER_ID_PATTERN = re.compile(r"^A[A-Z0-9]+$")
_NATIVE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WORKER_PREFIX = "A"


def worker_id_to_mturk(account_id: str) -> str:
    return WORKER_PREFIX + account_id


def worker_id_from_mturk(worker_id: str) -> str:
    """The native account id behind an MTurk WorkerId; a RequestError for any other form."""
    if not WORKER_ID_PATTERN.match(worker_id) or not _NATIVE_ID.match(worker_id[1:]):
        raise MTurkRequestError(
            f"WorkerId is invalid: {worker_id!r} does not match ^A[A-Z0-9]+$.",
            "AWS.ParameterOutOfRange",
        )
    return worker_id[1:]


def native_id(value: str, field: str) -> str:
    """A HITId / HITTypeId / AssignmentId / QualificationTypeId as the native id.

    The identity map, after the check MTurk applies (upper-case alphanumeric); an id of the
    right form that names nothing is the op's 'does not exist' error, not this one."""
    if not MTURK_ID_PATTERN.match(value) or len(value) > 64:
        raise MTurkRequestError(
            f"{field} is invalid: {value!r} does not match ^[A-Z0-9]+$.",
            "AWS.ParameterOutOfRange",
        )
    return value


def to_mturk(native: str) -> str:
    """A native id in the MTurk view (identity; kept as a function so the mapping has one
    place)."""
    return native
