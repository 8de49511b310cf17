"""The door in-process (the apps on the ServiceMesh, requests signed as botocore signs them):
the fast checks of what the live boto3 tests cannot see from outside: immediate revocation in
the revoking process, secrets never logged, the cache, the door's limits."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ServiceMesh
from tests.fixtures.accounts import Actor, create_requester
from tests.services.tasks.mturk.conftest import create_hit_params

TARGET = "MTurkRequesterServiceV20170117."
PATH = "/v1/accounts/me/mturk-credentials"


async def credentials_for(workers_client: httpx.AsyncClient, actor: Actor) -> dict[str, Any]:
    resp = await workers_client.post(PATH, headers=actor.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def door_call(
    tasks_client: httpx.AsyncClient,
    credentials: dict[str, Any],
    operation: str,
    params: dict[str, Any],
    *,
    invocation_id: str | None = None,
) -> httpx.Response:
    body = json.dumps(params).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation}
    if invocation_id:
        headers["amz-sdk-invocation-id"] = invocation_id
    request = AWSRequest(
        method="POST", url=str(tasks_client.base_url) + "/mturk", data=body, headers=headers
    )
    SigV4Auth(
        Credentials(credentials["access_key_id"], credentials["secret_access_key"]),
        "mturk-requester",
        "us-east-1",
    ).add_auth(request)
    return await tasks_client.post("/mturk", content=body, headers=dict(request.headers.items()))


async def test_revoked_in_this_process_fails_on_the_next_call(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    assert (await door_call(tasks_client, credentials, "ListHITs", {})).status_code == 200
    revoked = await workers_client.delete(
        f"{PATH}/{credentials['access_key_id']}", headers=requester.headers
    )
    assert revoked.status_code == 204
    # No wait: the revoking process (here, the same one) forgets the key before answering.
    resp = await door_call(tasks_client, credentials, "ListHITs", {})
    assert resp.status_code == 400
    assert resp.json()["__type"] == "UnrecognizedClientException"
    # Another credential of the same requester still works.
    other = await credentials_for(workers_client, requester)
    assert (await door_call(tasks_client, other, "ListHITs", {})).status_code == 200


async def test_secrets_never_reach_the_logs(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    await door_call(tasks_client, credentials, "ListHITs", {})
    await door_call(tasks_client, {**credentials, "secret_access_key": "w" * 40}, "ListHITs", {})
    await door_call(tasks_client, credentials, "ListHITs", {"MaxResults": 1000})
    await workers_client.get(PATH, headers=requester.headers)
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert credentials["secret_access_key"] not in logged


async def test_output_is_aws_json_with_a_request_id(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    credentials = await credentials_for(workers_client, await create_requester(workers_client))
    resp = await door_call(tasks_client, credentials, "ListHITs", {"MaxResults": 100})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-amz-json-1.1"
    assert resp.headers["x-amzn-requestid"]
    assert resp.json() == {"NumResults": 0, "HITs": []}


async def test_a_get_is_not_the_door(tasks_client: httpx.AsyncClient) -> None:
    resp = await tasks_client.get("/mturk")
    assert resp.status_code == 405


async def test_a_service_fault_is_not_replayed_the_retry_runs_again(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    mesh: ServiceMesh,
) -> None:
    requester = await create_requester(workers_client)
    deposit = await payments_client.post(
        "/v1/deposits", json={"amount": "5.00"}, headers=requester.headers
    )
    assert deposit.is_success, deposit.text
    credentials = await credentials_for(workers_client, requester)
    invocation = str(uuid.uuid4())
    mesh.stop("payments")  # the HIT's money cannot be reserved
    try:
        down = await door_call(
            tasks_client, credentials, "CreateHIT", create_hit_params(), invocation_id=invocation
        )
    finally:
        mesh.start("payments")
    assert down.status_code == 500, down.text
    assert down.json()["__type"] == "ServiceFault"
    assert set(down.json()) == {"__type", "Message", "TurkErrorCode"}
    # botocore retries a ServiceFault with the same invocation id: this time it is served.
    retry = await door_call(
        tasks_client, credentials, "CreateHIT", create_hit_params(), invocation_id=invocation
    )
    assert retry.status_code == 200, retry.text
    listed = await door_call(tasks_client, credentials, "ListHITs", {})
    assert listed.json()["NumResults"] == 1


ISSUE_OPERATIONS = {
    "CreateHITType", "CreateHIT", "CreateHITWithHITType", "GetHIT", "ListHITs",
    "ListAssignmentsForHIT", "GetAssignment", "ApproveAssignment", "RejectAssignment",
    "SendBonus", "GetAccountBalance", "CreateQualificationType", "GetQualificationType",
    "ListQualificationTypes", "AssociateQualificationWithWorker",
    "DisassociateQualificationFromWorker", "ListWorkersWithQualificationType",
    "GetQualificationScore", "UpdateExpirationForHIT", "DeleteHIT",
    "CreateAdditionalAssignmentsForHIT", "CreateWorkerBlock", "DeleteWorkerBlock",
    "ListWorkerBlocks", "NotifyWorkers",
}  # fmt: skip


async def test_every_other_model_operation_is_an_unknown_operation(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    from services.tasks.mturk.registry import registered_operations
    from services.tasks.mturk.validation import model_operation_names

    assert set(registered_operations()) == ISSUE_OPERATIONS
    credentials = await credentials_for(workers_client, await create_requester(workers_client))
    others = sorted(model_operation_names() - ISSUE_OPERATIONS)
    assert "ListReviewableHITs" in others and len(others) >= 10
    for operation in others:
        resp = await door_call(tasks_client, credentials, operation, {})
        assert resp.status_code == 400, (operation, resp.text)
        assert resp.json()["__type"] == "UnknownOperationException", operation


async def test_expired_replays_and_tokens_are_pruned(
    workers_client: httpx.AsyncClient, db: Any
) -> None:
    from services.tasks.mturk.idempotency import _PRUNE_SQL

    requester = await create_requester(workers_client)
    for age, key in ((timedelta(hours=25), "old"), (timedelta(hours=1), "new")):
        await db.execute(
            "INSERT INTO mturk_invocations (requester_id, invocation_id, request_hash, created_at)"
            " VALUES ($1, $2, $3, now() - $4::interval)",
            requester.id,
            key,
            b"\0" * 32,
            age,
        )
        await db.execute(
            "INSERT INTO mturk_request_tokens (requester_id, scope, token, created_at)"
            " VALUES ($1, 'HIT', $2, now() - $3::interval)",
            requester.id,
            key,
            age,
        )
    await db.execute(_PRUNE_SQL)
    for table, column in (
        ("mturk_invocations", "invocation_id"),
        ("mturk_request_tokens", "token"),
    ):
        left = await db.fetch(
            f"SELECT {column} AS key FROM {table} WHERE requester_id = $1", requester.id
        )
        assert [r["key"] for r in left] == ["new"], table


async def test_an_abandoned_claim_is_taken_over(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: Any
) -> None:
    """A process that died mid-call left its claim unanswered: a retry past 2 minutes runs."""
    from services.tasks.mturk.idempotency import request_hash

    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    invocation = str(uuid.uuid4())
    body = json.dumps({"WorkerId": "A01ABC", "Reason": "spam"}).encode()
    await db.execute(
        "INSERT INTO mturk_invocations (requester_id, invocation_id, request_hash, created_at)"
        " VALUES ($1, $2, $3, now() - interval '3 minutes')",
        requester.id,
        invocation,
        request_hash("CreateWorkerBlock", body),
    )
    resp = await door_call(
        tasks_client,
        credentials,
        "CreateWorkerBlock",
        {"WorkerId": "A01ABC", "Reason": "spam"},
        invocation_id=invocation,
    )
    assert resp.status_code in (200, 400), resp.text  # answered, not left waiting
    stored = await db.fetchval(
        "SELECT status_code FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2",
        requester.id,
        invocation,
    )
    assert stored == resp.status_code


async def test_a_body_over_the_service_limit_is_a_request_error_too(
    tasks_client: httpx.AsyncClient, apps: dict
) -> None:
    """Past the kit's `max_body_bytes` the middleware refuses before the door reads: an AWS
    JSON call still gets the door's shape."""
    limit = apps["tasks"].state.settings.max_body_bytes
    resp = await tasks_client.post(
        "/mturk",
        content=b"{" + b" " * limit + b"}",
        headers={"X-Amz-Target": TARGET + "ListHITs"},
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/x-amz-json-1.1"
    assert resp.json()["__type"] == "RequestError"
    plain = await tasks_client.post("/v1/projects", content=b"{" + b" " * limit + b"}")
    assert plain.status_code == 413  # the JSON/REST contract is unchanged


async def test_over_the_account_budget_is_a_throttling_exception(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    apps: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.errors import RateLimited

    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    limiter = apps["tasks"].state.account_rate_limiter
    counted: list[str] = []
    real_check = limiter.check

    async def check(key: str, db: Any = None) -> None:
        counted.append(key)
        if key == requester.id and len(counted) > 1:
            raise RateLimited("over budget", headers={"Retry-After": "3"})
        await real_check(key, db)

    monkeypatch.setattr(limiter, "check", check)
    assert (await door_call(tasks_client, credentials, "ListHITs", {})).status_code == 200
    resp = await door_call(tasks_client, credentials, "ListHITs", {})
    assert counted == [requester.id, requester.id]  # the door's calls are counted per account
    assert resp.status_code == 400
    assert resp.json()["__type"] == "ThrottlingException"


async def test_last_used_at_is_stamped_on_a_lookup(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    assert credentials["last_used_at"] is None
    assert (await door_call(tasks_client, credentials, "ListHITs", {})).status_code == 200
    listed = (await workers_client.get(PATH, headers=requester.headers)).json()["items"]
    assert listed[0]["last_used_at"] is not None


async def test_a_credential_sealed_under_another_key_is_refused_and_logged(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As after INTERNAL_TOKEN was rotated with MTURK_SECRETS_KEY unset: the stored secret no
    # longer opens. The caller gets an authentication error (not a fault); the operator an ERROR.
    import os

    from shared.mturk_credentials import forget_mturk_credential_in_process, seal_secret

    requester = await create_requester(workers_client)
    credentials = await credentials_for(workers_client, requester)
    key_id = credentials["access_key_id"]
    await db.execute(
        "UPDATE mturk_credentials SET secret_ciphertext = $2 WHERE access_key_id = $1",
        key_id,
        seal_secret(os.urandom(32), key_id, credentials["secret_access_key"]),
    )
    forget_mturk_credential_in_process(key_id)
    caplog.set_level(logging.ERROR, logger="mturk.credentials")
    resp = await door_call(tasks_client, credentials, "ListHITs", {})
    assert resp.status_code == 400, resp.text
    assert resp.json()["__type"] == "UnrecognizedClientException"
    assert any(
        key_id in r.getMessage() and "MTURK_SECRETS_KEY" in r.getMessage() for r in caplog.records
    )
