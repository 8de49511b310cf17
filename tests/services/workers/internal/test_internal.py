"""The eligibility function over HTTP (/internal/workers/{id}/eligibility) on the live process."""

from __future__ import annotations

import httpx

from shared.eligibility import APPROVAL_RATE_TYPE_ID
from tests.conftest import INTERNAL_TOKEN, LiveServices
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import create_type, grant


async def test_internal_eligibility_matches_the_library(
    workers_client: httpx.AsyncClient, live_services: LiveServices
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner)
    await grant(workers_client, owner, qtype["id"], worker.id, 3)
    body = {
        "projects": [
            {
                "project_id": "P1",
                "requester_id": owner.id,
                "requirements": [
                    {"qualification_type_id": qtype["id"], "comparator": "gte", "values": [3]},
                    {
                        "qualification_type_id": APPROVAL_RATE_TYPE_ID,
                        "comparator": "lt",
                        "values": [100],
                        "guard": "discover",
                    },
                ],
            }
        ]
    }
    url = f"{live_services.urls['workers']}/internal/workers/{worker.id}/eligibility"
    async with httpx.AsyncClient() as client:
        denied = await client.post(url, json=body, headers=worker.headers)
        assert denied.status_code == 401
        resp = await client.post(url, json=body, headers={"X-Internal-Token": INTERNAL_TOKEN})
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"]["P1"]
    assert result["blocked"] is False
    assert result["discover"]["ok"] is False
    [unmet] = result["accept"]["failures"]
    assert unmet["qualification_type_id"] == APPROVAL_RATE_TYPE_ID
    assert unmet["actual"] == 100 and unmet["guard"] == "discover"
