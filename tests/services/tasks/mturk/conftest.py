"""boto3 against the real running tasks service: the door's fixtures, shared by every MTurk test.

boto3 is synchronous, so the door must run in another process than the test's event loop: the
suite's `live_services` (the three services as uvicorn processes on real ports, one session)
serves it. Each test gets a fresh requester, signed up and funded through the public API, with
MTurk credentials made through `POST /v1/accounts/me/mturk-credentials`, and a boto3 `mturk`
client (region us-east-1) whose `endpoint_url` is that service's `/mturk`. Native workers are
made the same way and act through the native API (`NativeWorker`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.conftest import LiveServices

REGION = "us-east-1"
DEFAULT_FUNDS = "1000.00"


def make_mturk_client(
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    retries: int = 0,
    **config: Any,
) -> Any:
    """A boto3 MTurk client as a requester's script makes one, pointed at us. No retries by
    default: a test sees the first answer (retries are tested on purpose)."""
    return boto3.session.Session().client(
        "mturk",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(retries={"max_attempts": retries + 1, "mode": "standard"}, **config),
    )


@dataclass
class NativeWorker:
    """A worker account acting through the native JSON API (as a worker's app does)."""

    id: str
    api_key: str
    tasks_url: str
    http: httpx.Client = field(repr=False)

    @property
    def mturk_worker_id(self) -> str:
        return "A" + self.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def accept(self, hit_type_id: str) -> dict[str, Any]:
        """Claim the next task of the project (HITTypeId = project id): 201 body."""
        resp = self.http.post(
            f"{self.tasks_url}/v1/work/projects/{hit_type_id}/accept", headers=self.headers
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    def submit(self, assignment_id: str, answer: Any) -> dict[str, Any]:
        resp = self.http.post(
            f"{self.tasks_url}/v1/assignments/{assignment_id}/submit",
            json={"answer": answer},
            headers=self.headers,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()


@dataclass
class MTurkRequester:
    id: str
    api_key: str
    access_key_id: str
    secret_access_key: str
    endpoint_url: str
    client: Any = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client_with(self, **overrides: Any) -> Any:
        """Another client of this requester (other secret, retries, config)."""
        return make_mturk_client(
            overrides.pop("endpoint_url", self.endpoint_url),
            overrides.pop("access_key_id", self.access_key_id),
            overrides.pop("secret_access_key", self.secret_access_key),
            **overrides,
        )


def sign_up(http: httpx.Client, workers_url: str, kind: str, **fields: Any) -> dict[str, Any]:
    body = {
        "kind": kind,
        "name": fields.pop("name", f"MTurk test {kind}"),
        "email": f"mturk-{kind}-{uuid.uuid4().hex[:12]}@example.com",
        **fields,
    }
    resp = http.post(f"{workers_url}/v1/accounts", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def create_mturk_credentials(http: httpx.Client, workers_url: str, api_key: str) -> dict[str, Any]:
    resp = http.post(
        f"{workers_url}/v1/accounts/me/mturk-credentials",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="session")
def live_http() -> Any:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def mturk_endpoint(live_services: LiveServices) -> str:
    return live_services.urls["tasks"] + "/mturk"


@pytest.fixture
def new_mturk_requester(
    live_services: LiveServices, live_http: httpx.Client, mturk_endpoint: str
) -> Callable[..., MTurkRequester]:
    """Make a requester (funded with `funds`, "0" for none) with MTurk credentials."""

    def make(funds: str = DEFAULT_FUNDS, **account_fields: Any) -> MTurkRequester:
        workers_url = live_services.urls["workers"]
        signed_up = sign_up(live_http, workers_url, "requester", **account_fields)
        api_key = signed_up["api_key"]
        if funds != "0":
            resp = live_http.post(
                f"{live_services.urls['payments']}/v1/deposits",
                json={"amount": funds},
                headers={"Authorization": f"Bearer {api_key}"},
            )
            assert resp.status_code in (200, 201), resp.text
        credentials = create_mturk_credentials(live_http, workers_url, api_key)
        return MTurkRequester(
            id=signed_up["account"]["id"],
            api_key=api_key,
            access_key_id=credentials["access_key_id"],
            secret_access_key=credentials["secret_access_key"],
            endpoint_url=mturk_endpoint,
            client=make_mturk_client(
                mturk_endpoint, credentials["access_key_id"], credentials["secret_access_key"]
            ),
        )

    return make


@pytest.fixture
def mturk_requester(new_mturk_requester: Callable[..., MTurkRequester]) -> MTurkRequester:
    """A fresh requester, funded with 1000.00, with MTurk credentials and a client."""
    return new_mturk_requester()


@pytest.fixture
def mturk(mturk_requester: MTurkRequester) -> Any:
    """The boto3 `mturk` client of `mturk_requester`."""
    return mturk_requester.client


@pytest.fixture
def new_native_worker(
    live_services: LiveServices, live_http: httpx.Client
) -> Callable[..., NativeWorker]:
    """Make a worker account (e.g. `country="US"`, `languages=["en"]`) acting natively."""

    def make(**account_fields: Any) -> NativeWorker:
        signed_up = sign_up(live_http, live_services.urls["workers"], "worker", **account_fields)
        return NativeWorker(
            id=signed_up["account"]["id"],
            api_key=signed_up["api_key"],
            tasks_url=live_services.urls["tasks"],
            http=live_http,
        )

    return make


@pytest.fixture
def native_worker(new_native_worker: Callable[..., NativeWorker]) -> NativeWorker:
    return new_native_worker()


_SCHEMAS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas"
HTML_QUESTION = f"""<HTMLQuestion xmlns="{_SCHEMAS}/2011-11-11/HTMLQuestion.xsd">
  <HTMLContent><![CDATA[<!DOCTYPE html><html><body>
    <form name="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">
      <input type="hidden" name="assignmentId" value="">
      <p>Is this a cat?</p>
      <input type="radio" name="label" value="cat"> cat
      <input type="radio" name="label" value="dog"> dog
      <input type="submit">
    </form></body></html>]]></HTMLContent>
  <FrameHeight>450</FrameHeight>
</HTMLQuestion>"""


def create_hit_params(**overrides: Any) -> dict[str, Any]:
    """CreateHIT's arguments as a typical script passes them (override any)."""
    params: dict[str, Any] = {
        "Title": "Is this a cat?",
        "Description": "Look at one picture and say what it shows.",
        "Keywords": "image, labeling",
        "Reward": "0.10",
        "MaxAssignments": 1,
        "LifetimeInSeconds": 3600,
        "AssignmentDurationInSeconds": 600,
        "AutoApprovalDelayInSeconds": 86400,
        "Question": HTML_QUESTION,
    }
    params.update(overrides)
    return params
