"""The README's boto3 example, run as written against the live services (only the endpoint's
host and port, and the credentials it reads from the environment, are this run's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.conftest import LiveServices

README = Path(__file__).resolve().parents[2] / "README.md"
ENDPOINT_AS_WRITTEN = "http://127.0.0.1:8001/mturk"


def example() -> str:
    text = README.read_text()
    section = text.split("<!-- mturk-example:start -->", 1)[1].split("<!-- mturk-example:end")[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_readme_boto3_example_runs(live_services: LiveServices) -> None:
    code = example()
    assert ENDPOINT_AS_WRITTEN in code  # the fixed local endpoint of `manage.py run`
    code = code.replace(ENDPOINT_AS_WRITTEN, live_services.urls["tasks"] + "/mturk")
    with httpx.Client(timeout=30) as http:
        signed_up = http.post(
            f"{live_services.urls['workers']}/v1/accounts",
            json={
                "kind": "requester",
                "name": "README",
                "email": f"readme-{uuid.uuid4().hex[:10]}@example.com",
            },
        ).json()
        auth = {"Authorization": f"Bearer {signed_up['api_key']}"}
        deposit = http.post(
            f"{live_services.urls['payments']}/v1/deposits", json={"amount": "10.00"}, headers=auth
        )
        assert deposit.status_code in (200, 201), deposit.text
        credentials = http.post(
            f"{live_services.urls['workers']}/v1/accounts/me/mturk-credentials", headers=auth
        ).json()
    env = {
        **os.environ,
        "MTURK_ACCESS_KEY_ID": credentials["access_key_id"],
        "MTURK_SECRET_ACCESS_KEY": credentials["secret_access_key"],
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "10.00"
    hit_id, hit_type_id, status = lines[1].split()
    assert status == "Assignable" and hit_id.isalnum() and hit_type_id.isalnum()
