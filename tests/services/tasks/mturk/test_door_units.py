"""The door's pure parts: validation against the model, NextTokens, ids, output encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.ids import native_id, worker_id_from_mturk, worker_id_to_mturk
from services.tasks.mturk.pagination import (
    PageRequest,
    decode_token,
    encode_token,
    page_request,
    page_result,
)
from services.tasks.mturk.protocol import _serialize
from services.tasks.mturk.registry import MTurkCall
from services.tasks.mturk.validation import validate_input
from shared.jsonutil import loads


def call(operation: str = "ListHITs", requester: str = "01REQ", **params: Any) -> MTurkCall:
    settings = SimpleNamespace(internal_token=SecretStr("unit-test-internal-token"))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings)))
    return MTurkCall(
        requester_id=requester,
        operation=operation,
        params=params,
        request=request,  # type: ignore[arg-type]
        now=datetime.now(UTC),
    )


def refused(operation: str, params: Any) -> str:
    with pytest.raises(MTurkRequestError) as caught:
        validate_input(operation, params)
    assert caught.value.turk_error_code == "AWS.ParameterOutOfRange"
    return caught.value.message


def test_validation_reports_what_boto3_would_and_what_it_does_not() -> None:
    assert 'Missing required parameter in input: "HITId"' in refused("GetHIT", {})
    assert "Unknown parameter in input" in refused("ListHITs", {"Colour": "red"})
    assert "Invalid type for parameter MaxResults" in refused("ListHITs", {"MaxResults": "5"})
    message = refused("ListHITs", {"MaxResults": 101})
    assert message == (
        "1 validation error detected: Value '101' at 'maxResults' failed to satisfy "
        "constraint: Member must have value less than or equal to 100"
    )
    message = refused(
        "CreateHITType",
        {"Title": "t", "Description": "d", "Reward": "1.234", "AssignmentDurationInSeconds": 60},
    )
    assert "at 'reward'" in message and "^[0-9]+(\\.)?[0-9]{0,2}$" in message
    message = refused("ListAssignmentsForHIT", {"HITId": "A", "AssignmentStatuses": ["Paid"]})
    assert "enum value set: [Submitted, Approved, Rejected]" in message
    assert refused("ListHITs", [1]) == "The request body must be a JSON object."


def test_valid_input_is_returned_with_timestamps_as_datetimes() -> None:
    params = validate_input("UpdateExpirationForHIT", {"HITId": "ABC123", "ExpireAt": 1.5e9})
    assert params == {"HITId": "ABC123", "ExpireAt": datetime.fromtimestamp(1.5e9, UTC)}


def test_next_tokens_are_bound_to_requester_and_operation() -> None:
    token = encode_token(call(), {"id": "01ABC"})
    assert decode_token(call(), token) == {"id": "01ABC"}
    for other in (call(requester="01OTHER"), call(operation="ListWorkerBlocks")):
        with pytest.raises(MTurkRequestError):
            decode_token(other, token)
    payload, signature = token.split(".")
    for forged in (payload + "x." + signature, payload, "", "." + signature):
        with pytest.raises(MTurkRequestError):
            decode_token(call(), forged)


def test_page_result_has_num_results_always_and_next_token_only_before_the_end() -> None:
    page = page_request(call(MaxResults=2))
    assert page == PageRequest(limit=2, after=None)
    rows = ["A", "B", "C"]
    out = page_result(call(), "Items", rows, page, position=str, render=lambda r: {"Id": r})
    assert out["NumResults"] == 2 and out["Items"] == [{"Id": "A"}, {"Id": "B"}]
    assert decode_token(call(), out["NextToken"]) == "B"
    last = page_result(call(), "Items", rows[:2], page, position=str, render=lambda r: {"Id": r})
    assert "NextToken" not in last and last["NumResults"] == 2
    empty = page_result(call(), "Items", [], page, position=str, render=lambda r: {"Id": r})
    assert empty == {"NumResults": 0, "Items": []}
    with pytest.raises(MTurkRequestError):
        page_request(call(MaxResults=0))


def test_worker_ids_round_trip_and_foreign_forms_are_refused() -> None:
    assert worker_id_to_mturk("01HX") == "A01HX"
    assert worker_id_from_mturk("A01HX") == "01HX"
    for bad in ("01HX", "a01HX", "A", "A01-HX"):
        with pytest.raises(MTurkRequestError):
            worker_id_from_mturk(bad)
    assert native_id("01HX", "HITId") == "01HX"
    with pytest.raises(MTurkRequestError):
        native_id("01hx", "HITId")


def test_output_timestamps_are_epoch_seconds_and_nones_are_left_out() -> None:
    when = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    out = loads(_serialize({"HIT": {"CreationTime": when, "Expiration": None, "Reward": "0.10"}}))
    assert out == {"HIT": {"CreationTime": when.timestamp(), "Reward": "0.10"}}


def test_num_results_is_added_when_an_operation_leaves_it_out() -> None:
    from services.tasks.mturk.protocol import _with_num_results

    assert _with_num_results("ListHITs", {"HITs": [{}, {}]}) == {"HITs": [{}, {}], "NumResults": 2}
    assert _with_num_results("ListHITs", {}) == {"NumResults": 0}
    assert _with_num_results("ListHITs", {"NumResults": 1, "HITs": [{}]})["NumResults"] == 1
    assert _with_num_results("GetHIT", {"HIT": {}}) == {"HIT": {}}


def test_secrets_are_sealed_to_their_access_key_and_the_key_setting_is_checked() -> None:
    import base64
    import binascii

    from cryptography.exceptions import InvalidTag

    from shared.mturk_credentials import open_secret, seal_secret, secrets_key

    explicit = base64.b64encode(b"k" * 32).decode()
    key = secrets_key(explicit, "internal-token-0123456789")
    assert key == b"k" * 32
    derived = secrets_key(None, "internal-token-0123456789")
    assert len(derived) == 32 and derived != secrets_key(None, "another-internal-token-01")
    sealed = seal_secret(key, "AKMTONE", "the-secret")
    assert b"the-secret" not in sealed
    assert open_secret(key, "AKMTONE", sealed) == "the-secret"
    with pytest.raises(InvalidTag):  # moved to another row
        open_secret(key, "AKMTTWO", sealed)
    with pytest.raises(InvalidTag):  # another key
        open_secret(derived, "AKMTONE", sealed)
    with pytest.raises(ValueError):
        secrets_key(base64.b64encode(b"short").decode(), "internal-token-0123456789")
    with pytest.raises((ValueError, binascii.Error)):
        secrets_key("not base64 at all!", "internal-token-0123456789")
