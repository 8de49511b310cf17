"""The door's protocol through boto3 against the running tasks service: signatures, clock
skew, tampering, unknown operations, validation, errors' shape, idempotent retries."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import LiveServices
from tests.services.tasks.mturk.conftest import MTurkRequester

TARGET = "MTurkRequesterServiceV20170117."


def signed_post(
    requester: MTurkRequester,
    operation: str,
    body: bytes,
    *,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
    url: str | None = None,
    target: str | None = None,
) -> AWSRequest:
    """A request signed exactly as botocore signs one (the tests tamper with it after)."""
    request = AWSRequest(
        method="POST",
        url=url or requester.endpoint_url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET + operation if target is None else target,
            **(headers or {}),
        },
    )
    credentials = Credentials(requester.access_key_id, secret or requester.secret_access_key)
    SigV4Auth(credentials, "mturk-requester", "us-east-1").add_auth(request)
    return request


def send(request: AWSRequest, body: bytes | None = None) -> httpx.Response:
    return httpx.post(
        request.url,
        content=request.body if body is None else body,
        headers=dict(request.headers.items()),
        timeout=30,
    )


def error_of(exc: ClientError) -> dict[str, Any]:
    return exc.response["Error"]


def test_a_signed_call_is_served(mturk: Any) -> None:
    listed = mturk.list_hits(MaxResults=5)
    assert listed["NumResults"] == 0
    assert listed["HITs"] == []
    assert "NextToken" not in listed


def test_wrong_secret_is_refused(mturk_requester: MTurkRequester) -> None:
    client = mturk_requester.client_with(secret_access_key="x" * 40)
    with pytest.raises(ClientError) as caught:
        client.list_hits()
    assert error_of(caught.value)["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in error_of(caught.value)["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_access_key_is_refused(mturk_requester: MTurkRequester) -> None:
    client = mturk_requester.client_with(access_key_id="AKMTAAAAAAAAAAAAAAAA")
    with pytest.raises(ClientError) as caught:
        client.list_hits()
    assert error_of(caught.value)["Code"] == "UnrecognizedClientException"


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_skewed_clock_is_refused(
    mturk_requester: MTurkRequester, monkeypatch: pytest.MonkeyPatch, skew: timedelta
) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.now(UTC) + skew)
    with pytest.raises(ClientError) as caught:
        mturk_requester.client.list_hits()
    assert error_of(caught.value)["Code"] == "InvalidSignatureException"
    expected = "Signature expired" if skew < timedelta(0) else "Signature not yet current"
    assert expected in error_of(caught.value)["Message"]


def test_a_clock_within_five_minutes_is_accepted(
    mturk_requester: MTurkRequester, monkeypatch: pytest.MonkeyPatch
) -> None:
    skewed = lambda: datetime.now(UTC) - timedelta(minutes=4)  # noqa: E731
    monkeypatch.setattr(botocore.auth, "get_current_datetime", skewed)
    assert mturk_requester.client.list_hits()["NumResults"] == 0


def test_a_tampered_body_is_refused(mturk_requester: MTurkRequester) -> None:
    request = signed_post(mturk_requester, "ListHITs", b'{"MaxResults": 5}')
    resp = send(request, body=b'{"MaxResults": 6}')
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"
    # The untouched request passes: the refusal was the tampering's.
    assert send(request).status_code == 200


def test_a_content_hash_header_must_match_the_body(mturk_requester: MTurkRequester) -> None:
    body = b'{"MaxResults": 5}'
    other = b'{"MaxResults": 6}'
    request = signed_post(
        mturk_requester,
        "ListHITs",
        body,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    assert send(request).status_code == 200
    forged = signed_post(
        mturk_requester,
        "ListHITs",
        body,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    resp = send(forged, body=other)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"


def test_a_tampered_signed_header_is_refused(mturk_requester: MTurkRequester) -> None:
    request = signed_post(mturk_requester, "ListHITs", b"{}")
    request.headers.replace_header("X-Amz-Target", TARGET + "ListWorkerBlocks")
    resp = send(request)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"


def test_a_missing_signature_is_refused(live_services: LiveServices, mturk_endpoint: str) -> None:
    resp = httpx.post(
        mturk_endpoint,
        content=b"{}",
        headers={"X-Amz-Target": TARGET + "ListHITs", "Content-Type": "application/x-amz-json-1.1"},
    )
    assert resp.status_code == 400
    assert resp.json()["__type"] == "MissingAuthenticationTokenException"


def test_another_services_scope_is_refused(mturk_requester: MTurkRequester) -> None:
    request = AWSRequest(
        method="POST",
        url=mturk_requester.endpoint_url,
        data=b"{}",
        headers={"X-Amz-Target": TARGET + "ListHITs"},
    )
    credentials = Credentials(mturk_requester.access_key_id, mturk_requester.secret_access_key)
    SigV4Auth(credentials, "dynamodb", "us-east-1").add_auth(request)
    resp = send(request)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"


def test_any_region_is_accepted(mturk_requester: MTurkRequester) -> None:
    request = AWSRequest(
        method="POST",
        url=mturk_requester.endpoint_url,
        data=b"{}",
        headers={"X-Amz-Target": TARGET + "ListHITs"},
    )
    credentials = Credentials(mturk_requester.access_key_id, mturk_requester.secret_access_key)
    SigV4Auth(credentials, "mturk-requester", "eu-west-1").add_auth(request)
    assert send(request).status_code == 200


def test_a_revoked_key_stops_working(
    mturk_requester: MTurkRequester, live_services: LiveServices, live_http: httpx.Client
) -> None:
    assert mturk_requester.client.list_hits()["NumResults"] == 0  # now cached by the door
    listed = live_http.get(
        f"{live_services.urls['workers']}/v1/accounts/me/mturk-credentials",
        headers=mturk_requester.headers,
    ).json()
    assert [c["access_key_id"] for c in listed["items"]] == [mturk_requester.access_key_id]
    assert all("secret_access_key" not in c for c in listed["items"])
    revoked = live_http.delete(
        f"{live_services.urls['workers']}/v1/accounts/me/mturk-credentials/"
        f"{mturk_requester.access_key_id}",
        headers=mturk_requester.headers,
    )
    assert revoked.status_code == 204
    # The revocation reaches the tasks process by NOTIFY; allow it the moment it takes.
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while True:
        try:
            mturk_requester.client.list_hits()
        except ClientError as exc:
            assert error_of(exc)["Code"] == "UnrecognizedClientException"
            break
        assert datetime.now(UTC) < deadline, "a revoked key still works after 5 s"


def test_unknown_operation_is_a_400(mturk_requester: MTurkRequester) -> None:
    # ListReviewableHITs is in the model but not served: botocore sends it signed.
    with pytest.raises(ClientError) as caught:
        mturk_requester.client.list_reviewable_hits()
    assert error_of(caught.value)["Code"] == "UnknownOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # A name no model has, and a target of another service: 400 too, never 5xx.
    for target in (TARGET + "LaunchRockets", "DynamoDB_20120810.ListTables", ""):
        resp = send(signed_post(mturk_requester, "", b"{}", target=target))
        assert resp.status_code == 400, (target, resp.text)
        assert resp.json()["__type"] == "UnknownOperationException"


@pytest.mark.parametrize("max_results", [0, 101, 1000])
def test_max_results_out_of_range(mturk_requester: MTurkRequester, max_results: int) -> None:
    # boto3 itself refuses 0 (the model's min); without its validation the door refuses it.
    client = mturk_requester.client_with(parameter_validation=False)
    with pytest.raises(client.exceptions.RequestError) as caught:
        client.list_hits(MaxResults=max_results)
    error = error_of(caught.value)
    assert error["Code"] == "RequestError"
    assert caught.value.response["TurkErrorCode"] == "AWS.ParameterOutOfRange"
    assert "maxResults" in error["Message"] or "MaxResults" in error["Message"]


def test_patterns_and_maxima_boto3_does_not_check(mturk_requester: MTurkRequester) -> None:
    with pytest.raises(mturk_requester.client.exceptions.RequestError) as caught:
        mturk_requester.client.get_hit(HITId="not-an-id")
    message = error_of(caught.value)["Message"]
    assert "Member must satisfy regular expression pattern: ^[A-Z0-9]+$" in message
    with pytest.raises(mturk_requester.client.exceptions.RequestError) as caught:
        mturk_requester.client.list_hits(NextToken="x" * 256)
    assert "less than or equal to 255" in error_of(caught.value)["Message"]


def test_missing_and_mistyped_members_without_boto3s_validation(
    mturk_requester: MTurkRequester,
) -> None:
    client = mturk_requester.client_with(parameter_validation=False)
    with pytest.raises(client.exceptions.RequestError) as caught:
        client.get_hit()
    assert 'Missing required parameter in input: "HITId"' in error_of(caught.value)["Message"]
    body = json.dumps({"MaxResults": "ten"}).encode()
    resp = send(signed_post(mturk_requester, "ListHITs", body))
    assert resp.status_code == 400
    assert resp.json()["__type"] == "RequestError"
    assert "Invalid type for parameter MaxResults" in resp.json()["Message"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"MaxResults": 5, "Title": "a\\u0000b"}']
)
def test_malformed_bodies_are_request_errors(mturk_requester: MTurkRequester, body: bytes) -> None:
    resp = send(signed_post(mturk_requester, "ListHITs", body))
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/x-amz-json-1.1"
    data = resp.json()
    assert data["__type"] == "RequestError"
    assert data["TurkErrorCode"] and data["Message"]


def test_an_oversized_body_is_a_request_error(mturk_requester: MTurkRequester) -> None:
    body = json.dumps({"MaxResults": 5, "NextToken": "A" * (600 * 1024)}).encode()
    resp = send(signed_post(mturk_requester, "ListHITs", body))
    assert resp.status_code == 400
    assert resp.json()["__type"] == "RequestError"


def test_a_forged_next_token_is_refused(mturk_requester: MTurkRequester) -> None:
    with pytest.raises(mturk_requester.client.exceptions.RequestError) as caught:
        mturk_requester.client.list_hits(NextToken="eyJpZCI6IjAifQ.AAAAAAAAAAAAAAAAAAAAAA")
    assert "pagination token is invalid" in error_of(caught.value)["Message"]


def test_the_door_answers_on_each_documented_path(mturk_requester: MTurkRequester) -> None:
    base = mturk_requester.endpoint_url.removesuffix("/mturk")
    for endpoint in (base + "/mturk", base + "/mturk/", base):
        client = mturk_requester.client_with(endpoint_url=endpoint)
        assert client.list_hits()["NumResults"] == 0, endpoint


def test_aws_endpoint_url_mturk_points_an_unchanged_script_at_us(
    mturk_requester: MTurkRequester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", mturk_requester.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", mturk_requester.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", mturk_requester.secret_access_key)
    client = boto3.session.Session().client("mturk", region_name="us-east-1")
    assert client.list_hits()["NumResults"] == 0


def test_only_signed_headers_count(mturk_requester: MTurkRequester) -> None:
    request = signed_post(mturk_requester, "ListHITs", b"{}")
    # botocore does not sign User-Agent: a proxy may rewrite it.
    assert "user-agent" not in request.headers["Authorization"]
    request.headers["User-Agent"] = "rewritten-by-a-proxy/1.0"
    request.headers["X-Unsigned-Extra"] = "anything"
    assert send(request).status_code == 200


def test_the_host_as_sent_is_verified(mturk_requester: MTurkRequester) -> None:
    # Signed for another host name than the one the request carries: refused.
    port = mturk_requester.endpoint_url.split(":")[2].split("/")[0]
    request = signed_post(mturk_requester, "ListHITs", b"{}", url=f"http://localhost:{port}/mturk")
    resp = httpx.post(
        mturk_requester.endpoint_url,  # 127.0.0.1: the Host header says so
        content=request.body,
        headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        timeout=30,
    )
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"
    # Sent to the host it names, the same signature is good.
    assert send(request).status_code == 200


class _SignsUserAgent(SigV4Auth):
    """Another SDK's choice: User-Agent among the signed headers (botocore never signs it)."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        headers["user-agent"] = request.headers["User-Agent"]
        return headers


def test_a_header_botocore_would_not_sign_is_verified_when_signed(
    mturk_requester: MTurkRequester,
) -> None:
    request = AWSRequest(
        method="POST",
        url=mturk_requester.endpoint_url,
        data=b"{}",
        headers={"X-Amz-Target": TARGET + "ListHITs", "User-Agent": "other-sdk/2.0"},
    )
    credentials = Credentials(mturk_requester.access_key_id, mturk_requester.secret_access_key)
    _SignsUserAgent(credentials, "mturk-requester", "us-east-1").add_auth(request)
    assert "user-agent" in request.headers["Authorization"]
    assert send(request).status_code == 200
    request.headers.replace_header("User-Agent", "tampered/1.0")
    resp = send(request)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"
