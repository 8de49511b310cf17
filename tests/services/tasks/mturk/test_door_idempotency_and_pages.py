"""Retried writes (amz-sdk-invocation-id), UniqueRequestToken, and pagination over pages."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.services.tasks.mturk.conftest import MTurkRequester, create_hit_params

TARGET = "MTurkRequesterServiceV20170117."


def signed(requester: MTurkRequester, operation: str, params: dict[str, Any], invocation: str):
    request = AWSRequest(
        method="POST",
        url=requester.endpoint_url,
        data=json.dumps(params).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET + operation,
            "amz-sdk-invocation-id": invocation,
        },
    )
    credentials = Credentials(requester.access_key_id, requester.secret_access_key)
    SigV4Auth(credentials, "mturk-requester", "us-east-1").add_auth(request)
    return request


def post(request: AWSRequest) -> httpx.Response:
    return httpx.post(
        request.url, content=request.body, headers=dict(request.headers.items()), timeout=30
    )


def test_a_retried_create_hit_is_answered_once(mturk_requester: MTurkRequester) -> None:
    invocation = str(uuid.uuid4())
    request = signed(mturk_requester, "CreateHIT", create_hit_params(), invocation)
    first = post(request)
    assert first.status_code == 200, first.text
    # botocore's retry: the same invocation id and body, signed again (a new date).
    retry = post(signed(mturk_requester, "CreateHIT", create_hit_params(), invocation))
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert mturk_requester.client.list_hits()["NumResults"] == 1


def test_concurrent_retries_create_one_hit(mturk_requester: MTurkRequester) -> None:
    invocation = str(uuid.uuid4())
    requests = [
        signed(mturk_requester, "CreateHIT", create_hit_params(), invocation) for _ in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, requests))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json()["HIT"]["HITId"] for a in answers}) == 1
    assert mturk_requester.client.list_hits()["NumResults"] == 1


def test_an_invocation_id_reused_for_another_body_is_refused(
    mturk_requester: MTurkRequester,
) -> None:
    invocation = str(uuid.uuid4())
    assert post(signed(mturk_requester, "CreateHIT", create_hit_params(), invocation)).is_success
    other = post(
        signed(mturk_requester, "CreateHIT", create_hit_params(Title="Another"), invocation)
    )
    assert other.status_code == 400
    assert other.json()["__type"] == "RequestError"
    assert other.json()["TurkErrorCode"] == "AWS.MechanicalTurk.DuplicateRequest"
    assert mturk_requester.client.list_hits()["NumResults"] == 1


def test_a_request_error_is_replayed_not_rerun(mturk_requester: MTurkRequester) -> None:
    """A RequestError is the call's answer: the retry gets it again (same body)."""
    invocation = str(uuid.uuid4())
    bad = create_hit_params(Question="<NotAQuestion/>")
    first = post(signed(mturk_requester, "CreateHIT", bad, invocation))
    assert first.status_code == 400
    again = post(signed(mturk_requester, "CreateHIT", bad, invocation))
    assert (again.status_code, again.content) == (400, first.content)


def test_each_botocore_call_is_its_own_invocation(mturk: Any) -> None:
    """Two calls of a script with identical arguments are two HITs (botocore sends a new
    invocation id per call): deduplication is for retries only."""
    mturk.create_hit(**create_hit_params())
    mturk.create_hit(**create_hit_params())
    assert mturk.list_hits()["NumResults"] == 2


def test_unique_request_token_is_refused_on_reuse(mturk: Any) -> None:
    token = uuid.uuid4().hex
    created = mturk.create_hit(**create_hit_params(UniqueRequestToken=token))
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.create_hit(**create_hit_params(UniqueRequestToken=token))
    error = caught.value.response
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.DuplicateRequest"
    assert "There is already a HIT with this unique request token" in error["Error"]["Message"]
    assert mturk.list_hits()["NumResults"] == 1
    assert mturk.list_hits()["HITs"][0]["HITId"] == created["HIT"]["HITId"]


def test_unique_request_tokens_are_per_requester(
    mturk_requester: MTurkRequester, new_mturk_requester
) -> None:
    token = uuid.uuid4().hex
    other = new_mturk_requester()
    mturk_requester.client.create_hit(**create_hit_params(UniqueRequestToken=token))
    other.client.create_hit(**create_hit_params(UniqueRequestToken=token))


def test_list_hits_over_three_pages(mturk: Any, new_mturk_requester) -> None:
    created = [mturk.create_hit(**create_hit_params())["HIT"]["HITId"] for _ in range(7)]
    new_mturk_requester().client.create_hit(**create_hit_params())  # someone else's: not listed
    pages = list(mturk.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 3}))
    assert [p["NumResults"] for p in pages] == [3, 3, 1]
    assert ["NextToken" in p for p in pages] == [True, True, False]
    seen = [hit["HITId"] for page in pages for hit in page["HITs"]]
    assert sorted(seen) == sorted(created)  # each once, none of the other requester's
    # An exact multiple: the last full page has no NextToken (no empty page after it).
    pages = list(mturk.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 7}))
    assert [p["NumResults"] for p in pages] == [7]
    assert "NextToken" not in pages[0]


def test_a_next_token_belongs_to_its_requester(mturk: Any, new_mturk_requester) -> None:
    for _ in range(2):
        mturk.create_hit(**create_hit_params())
    token = mturk.list_hits(MaxResults=1)["NextToken"]
    other = new_mturk_requester().client
    with pytest.raises(other.exceptions.RequestError):
        other.list_hits(MaxResults=1, NextToken=token)
