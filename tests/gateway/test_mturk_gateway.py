"""The MTurk door through the gateway (nginx, two tasks replicas): boto3 signs the Host with
its port, so nginx must pass the door's Host on as sent; calls land on either replica and a
revocation through a workers replica reaches both tasks replicas."""

from __future__ import annotations

import time
import uuid

import httpx
from botocore.exceptions import ClientError

from tests.gateway.conftest import GatewayStack
from tests.services.tasks.mturk.conftest import create_hit_params, make_mturk_client


def test_boto3_through_the_gateway(live_services: GatewayStack) -> None:
    urls = live_services.urls
    with httpx.Client(timeout=30) as http:
        signed_up = http.post(
            f"{urls['workers']}/v1/accounts",
            json={
                "kind": "requester",
                "name": "gateway mturk",
                "email": f"gw-mturk-{uuid.uuid4().hex[:10]}@example.com",
            },
        ).json()
        auth = {"Authorization": f"Bearer {signed_up['api_key']}"}
        assert http.post(
            f"{urls['payments']}/v1/deposits", json={"amount": "5.00"}, headers=auth
        ).is_success
        credentials = http.post(
            f"{urls['workers']}/v1/accounts/me/mturk-credentials", headers=auth
        ).json()
        client = make_mturk_client(
            urls["tasks"] + "/mturk",
            credentials["access_key_id"],
            credentials["secret_access_key"],
        )
        hit = client.create_hit(**create_hit_params())["HIT"]
        # Several calls: each may reach either tasks replica (the signature changes every
        # call, and with it the hash nginx balances on).
        for _ in range(6):
            assert client.get_hit(HITId=hit["HITId"])["HIT"]["HITId"] == hit["HITId"]
        revoked = http.delete(
            f"{urls['workers']}/v1/accounts/me/mturk-credentials/{credentials['access_key_id']}",
            headers=auth,
        )
        assert revoked.status_code == 204
    deadline = time.monotonic() + 5
    refusals = 0
    while refusals < 6:  # refused by whichever replica answers, several times over
        try:
            client.list_hits()
            refusals = 0
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "UnrecognizedClientException"
            refusals += 1
        assert time.monotonic() < deadline, "a revoked key still works through the gateway"
