"""The door's qualification operations, mapped onto the workers service's qualification types
and grants (its /internal/requesters/{id}/qualification-types endpoints: the same service
functions and rules as the public API, on behalf of the SigV4-authenticated requester).

| MTurk | native |
|---|---|
| QualificationTypeId | qualification type id (system ids are the same strings) |
| QualificationTypeStatus Active / Inactive | status active / inactive |
| Keywords "a, b" | keywords ["a", "b"] |
| Test + AnswerKey + TestDurationInSeconds | test + answer_key (answer_key.py); the XML kept |
| RetryDelayInSeconds (absent: no retake) | retry_delay_seconds (null: one attempt) |
| AutoGranted / AutoGrantedValue | auto_grant / auto_grant_value |
| IsRequestable | a test or auto_grant |
| Associate / Disassociate | grant (value) / revoke (reason) |
| Qualification Status Granted / Revoked | grant status granted / revoked |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.tasks.mturk.answer_key import native_test
from services.tasks.mturk.errors import DOES_NOT_EXIST, NOT_AUTHORIZED, MTurkRequestError
from services.tasks.mturk.ids import native_id, to_mturk, worker_id_from_mturk, worker_id_to_mturk
from services.tasks.mturk.pagination import page_request, page_result
from services.tasks.mturk.registry import MTurkCall, mturk_operation
from shared.eligibility import COUNTRY_TYPE_ID
from shared.errors import AppError
from shared.http import InternalClient

INVALID_VALUE = "AWS.MechanicalTurk.InvalidParameterValue"
TYPE_DOES_NOT_EXIST = "AWS.MechanicalTurk.QualificationTypeDoesNotExist"
QUALIFICATION_DOES_NOT_EXIST = "AWS.MechanicalTurk.QualificationDoesNotExist"
NAME_TAKEN = "AWS.MechanicalTurk.QualificationTypeAlreadyExists"
MAX_KEYWORDS = 20
MAX_KEYWORD_CHARS = 50
MAX_NAME = 200
MAX_DESCRIPTION = 2_000
STATUSES = {"Active": "active", "Inactive": "inactive"}
GRANT_STATUSES = {"Granted": "granted", "Revoked": "revoked"}


def _workers(call: MTurkCall) -> InternalClient:
    return call.request.app.state.peers["workers"]


def _base(call: MTurkCall) -> str:
    return f"/internal/requesters/{call.requester_id}/qualification-types"


def _type_missing(type_id: str) -> MTurkRequestError:
    return MTurkRequestError(
        f"You requested a QualificationType that does not exist. (QualificationTypeId {type_id})",
        TYPE_DOES_NOT_EXIST,
    )


def _as_mturk_error(exc: AppError, *, type_id: str | None, worker_id: str | None) -> Exception:
    """A workers-service refusal in MTurk's words (the codes are that service's contract)."""
    if exc.code == "name_taken":
        return MTurkRequestError(
            "You have already created a QualificationType with this name. A QualificationType's "
            "name must be unique among all of the QualificationTypes created by the same user.",
            NAME_TAKEN,
        )
    if exc.code == "qualification_type_not_found":
        return _type_missing(type_id or "")
    if exc.code == "system_qualification_type":
        return MTurkRequestError(
            f"You are not the owner of QualificationType {type_id}: system qualifications are "
            "computed from the worker's record and cannot be granted or revoked.",
            NOT_AUTHORIZED,
        )
    if exc.code == "worker_not_found":
        return MTurkRequestError(f"Worker {worker_id} does not exist.", DOES_NOT_EXIST)
    if exc.code == "qualification_not_granted":
        return MTurkRequestError(
            "You requested a Qualification that does not exist.", QUALIFICATION_DOES_NOT_EXIST
        )
    if 400 <= exc.status < 500:
        return MTurkRequestError(exc.detail, INVALID_VALUE)
    return exc


async def _call(
    call: MTurkCall,
    method: str,
    path: str,
    *,
    type_id: str | None = None,
    worker_id: str | None = None,
    **kw: Any,
) -> Any:
    try:
        return await _workers(call).request(method, _base(call) + path, **kw)
    except AppError as exc:
        raise _as_mturk_error(exc, type_id=type_id, worker_id=worker_id) from exc


# --- shapes ---------------------------------------------------------------------------------


def _moment(value: str | datetime) -> datetime:
    """A timestamp of the workers service's JSON as a datetime (the protocol layer sends
    datetimes as epoch seconds, MTurk's timestamp form)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def qualification_type_shape(row: dict[str, Any]) -> dict[str, Any]:
    """The model's QualificationType structure from the internal view of a type."""
    shape: dict[str, Any] = {
        "QualificationTypeId": to_mturk(row["id"]),
        "CreationTime": _moment(row["created_at"]),
        "Name": row["name"],
        "Description": row["description"],
        "Keywords": ", ".join(row["keywords"]),
        "QualificationTypeStatus": "Active" if row["status"] == "active" else "Inactive",
        "IsRequestable": row["test"] is not None or bool(row["auto_grant"]),
        "AutoGranted": bool(row["auto_grant"]),
    }
    if row["auto_grant"]:
        shape["AutoGrantedValue"] = row["auto_grant_value"]
    if row["test"] is not None:
        shape["TestDurationInSeconds"] = row["test"]["duration_seconds"]
        if row["mturk_test"] is not None:
            shape["Test"] = row["mturk_test"]
    if row["mturk_answer_key"] is not None:  # the owner's view only
        shape["AnswerKey"] = row["mturk_answer_key"]
    if row["retry_delay_seconds"] is not None:
        shape["RetryDelayInSeconds"] = row["retry_delay_seconds"]
    return shape


def qualification_shape(score: dict[str, Any]) -> dict[str, Any]:
    """The model's Qualification structure from a grant or a system value."""
    shape: dict[str, Any] = {
        "QualificationTypeId": to_mturk(score["qualification_type_id"]),
        "WorkerId": worker_id_to_mturk(score["worker_id"]),
        "Status": "Granted" if score["status"] == "granted" else "Revoked",
    }
    if score.get("granted_at") is not None:
        shape["GrantTime"] = _moment(score["granted_at"])
    value = score["value"]
    if score["qualification_type_id"] == COUNTRY_TYPE_ID and isinstance(value, str):
        shape["LocaleValue"] = {"Country": value}
    else:
        shape["IntegerValue"] = int(value)
    return shape


# --- input ----------------------------------------------------------------------------------


def _keywords(text: str | None) -> list[str]:
    keywords: list[str] = []
    for part in (text or "").split(","):
        keyword = part.strip().lower()
        if keyword and keyword not in keywords:
            keywords.append(keyword)
    if len(keywords) > MAX_KEYWORDS:
        raise MTurkRequestError(
            f"Keywords may list at most {MAX_KEYWORDS} keywords for a QualificationType.",
            INVALID_VALUE,
        )
    for keyword in keywords:
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise MTurkRequestError(
                f"Each keyword must be at most {MAX_KEYWORD_CHARS} characters: {keyword!r}.",
                INVALID_VALUE,
            )
    return keywords


def _native_type(params: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """(the native create body, the Test XML, the AnswerKey XML)."""
    name = str(params["Name"]).strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise MTurkRequestError(f"Name must have 1 to {MAX_NAME} characters.", INVALID_VALUE)
    if name.lower().startswith("system."):
        raise MTurkRequestError("Names starting with 'system.' are reserved.", INVALID_VALUE)
    description = str(params["Description"])
    if len(description) > MAX_DESCRIPTION:
        raise MTurkRequestError(
            f"Description must be at most {MAX_DESCRIPTION} characters long.", INVALID_VALUE
        )
    test_xml = params.get("Test")
    answer_key_xml = params.get("AnswerKey")
    auto_granted = bool(params.get("AutoGranted", False))
    if auto_granted and test_xml is not None:
        raise MTurkRequestError(
            "A QualificationType cannot have both a Test and AutoGranted set to true.",
            INVALID_VALUE,
        )
    if answer_key_xml is not None and test_xml is None:
        raise MTurkRequestError("An AnswerKey can only be given with a Test.", INVALID_VALUE)
    if params.get("TestDurationInSeconds") is not None and test_xml is None:
        raise MTurkRequestError(
            "TestDurationInSeconds can only be given with a Test.", INVALID_VALUE
        )
    retry = params.get("RetryDelayInSeconds")
    if retry is not None and not 0 <= retry <= 31_536_000:
        raise MTurkRequestError(
            "RetryDelayInSeconds must be between 0 and 31536000.", "AWS.ParameterOutOfRange"
        )
    value = params.get("AutoGrantedValue", 1)
    if not -(2**31) <= value <= 2**31 - 1:
        raise MTurkRequestError("AutoGrantedValue is out of range.", "AWS.ParameterOutOfRange")
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "keywords": _keywords(params.get("Keywords")),
        "status": STATUSES[params["QualificationTypeStatus"]],
        "retry_delay_seconds": retry,
        "auto_grant": auto_granted,
        "auto_grant_value": value,
    }
    if test_xml is not None:
        converted = native_test(
            test_xml,
            duration_seconds=params.get("TestDurationInSeconds"),
            answer_key_xml=answer_key_xml,
        )
        body["test"] = converted.test
        body["answer_key"] = converted.answer_key
    return body, test_xml, answer_key_xml


# --- operations -----------------------------------------------------------------------------


@mturk_operation("CreateQualificationType")
async def create_qualification_type(call: MTurkCall) -> dict[str, Any]:
    body, test_xml, answer_key_xml = _native_type(call.params)
    created = await _call(
        call,
        "POST",
        "",
        json={"type": body, "mturk_test": test_xml, "mturk_answer_key": answer_key_xml},
    )
    return {"QualificationType": qualification_type_shape(created)}


@mturk_operation("GetQualificationType")
async def get_qualification_type(call: MTurkCall) -> dict[str, Any]:
    type_id = native_id(call.params["QualificationTypeId"], "QualificationTypeId")
    found = await _call(call, "GET", f"/{type_id}", type_id=type_id)
    return {"QualificationType": qualification_type_shape(found)}


@mturk_operation("ListQualificationTypes")
async def list_qualification_types(call: MTurkCall) -> dict[str, Any]:
    page = page_request(call)
    params: dict[str, Any] = {
        "limit": page.limit + 1,
        "mine": bool(call.params.get("MustBeOwnedByCaller", False)),
        "requestable": bool(call.params["MustBeRequestable"]),
    }
    query = (call.params.get("Query") or "").strip()
    if query:
        params["query"] = query[:200]
    if page.after is not None:
        params["before"] = str(page.after)
    found = await _call(call, "GET", "", params=params)
    return page_result(
        call,
        "QualificationTypes",
        found["items"],
        page,
        position=lambda row: row["id"],
        render=qualification_type_shape,
    )


@mturk_operation("AssociateQualificationWithWorker")
async def associate_qualification_with_worker(call: MTurkCall) -> dict[str, Any]:
    type_id = native_id(call.params["QualificationTypeId"], "QualificationTypeId")
    mturk_worker = call.params["WorkerId"]
    worker_id = worker_id_from_mturk(mturk_worker)
    value = call.params.get("IntegerValue", 1)
    # SendNotification: no e-mail is sent (the marketplace has no worker e-mail channel for
    # this); the worker sees the qualification in GET /v1/workers/me/qualifications.
    await _call(
        call,
        "PUT",
        f"/{type_id}/workers/{worker_id}",
        json={"value": value},
        type_id=type_id,
        worker_id=mturk_worker,
    )
    return {}


@mturk_operation("DisassociateQualificationFromWorker")
async def disassociate_qualification_from_worker(call: MTurkCall) -> dict[str, Any]:
    type_id = native_id(call.params["QualificationTypeId"], "QualificationTypeId")
    mturk_worker = call.params["WorkerId"]
    worker_id = worker_id_from_mturk(mturk_worker)
    reason = call.params.get("Reason")
    if reason is not None and len(reason) > 1000:
        raise MTurkRequestError("Reason must be at most 1000 characters long.", INVALID_VALUE)
    await _call(
        call,
        "POST",
        f"/{type_id}/workers/{worker_id}/revoke",
        json={"reason": reason},
        type_id=type_id,
        worker_id=mturk_worker,
    )
    return {}


@mturk_operation("ListWorkersWithQualificationType")
async def list_workers_with_qualification_type(call: MTurkCall) -> dict[str, Any]:
    type_id = native_id(call.params["QualificationTypeId"], "QualificationTypeId")
    page = page_request(call)
    params: dict[str, Any] = {
        "limit": page.limit + 1,
        "status": GRANT_STATUSES[call.params.get("Status", "Granted")],
    }
    if page.after is not None:
        params["before"] = str(page.after)
    found = await _call(call, "GET", f"/{type_id}/workers", params=params, type_id=type_id)
    rows = found["items"]
    return page_result(
        call,
        "Qualifications",
        rows,
        page,
        position=lambda grant: grant["id"],
        render=qualification_shape,
    )


@mturk_operation("GetQualificationScore")
async def get_qualification_score(call: MTurkCall) -> dict[str, Any]:
    type_id = native_id(call.params["QualificationTypeId"], "QualificationTypeId")
    mturk_worker = call.params["WorkerId"]
    worker_id = worker_id_from_mturk(mturk_worker)
    score = await _call(
        call, "GET", f"/{type_id}/workers/{worker_id}", type_id=type_id, worker_id=mturk_worker
    )
    return {"Qualification": qualification_shape(score)}
