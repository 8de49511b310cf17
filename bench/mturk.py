"""MTurk door bench: the same work through the door and through the native API, same run.

    .venv/bin/python -m bench.mturk [--seconds 8] [--rounds 2] [--concurrency 16]

One stack (bench/stack.py: embedded Postgres, the three services as processes). One funded
requester with MTurk credentials; then, alternating door and native phases (`--rounds` each,
after a warm-up of each), as many requests as `--concurrency` connections can get answered in
`--seconds`:

- **CreateHIT** (door: a signed `CreateHIT` of a 1-assignment HIT with an HTMLQuestion, into
  one HIT type) against the native **add a task** to the same published project
  (`POST /v1/projects/{HITTypeId}/tasks` with the same input the door stores): both reserve the
  slot's money and insert one task.
- **ListAssignmentsForHIT** (door: `MaxResults=10` over one HIT with 10 submitted assignments)
  against the native `GET /v1/projects/{id}/assignments?status=submitted&limit=10` of the same
  HIT type (it holds that one HIT): the same ten rows.

The load generator is one asyncio process with httpx (the door's requests signed per request
with botocore's `SigV4Auth`, as boto3 does; the native ones carry a bearer key). Then the cost
of a SigV4 verification alone, in-process (`services.tasks.mturk.auth.verify_signature` on a
signed request, the key cache hit), and of signing one (client side).

Printed: requests/s per phase and round, the median of each side, the ratio door/native (the
target is >= 0.5), and the microseconds of one verification. On a shared machine every figure
is noisy: compare the ratios of one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shared.jsonutil import dumps

TARGET = "MTurkRequesterServiceV20170117."
REGION = "us-east-1"
HTML_QUESTION = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html><html><body>'
    '<form name="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">'
    '<input type="hidden" name="assignmentId" value=""><p>Cat or dog?</p>'
    '<input type="radio" name="label" value="cat"><input type="radio" name="label" value="dog">'
    "</form></body></html>]]></HTMLContent><FrameHeight>400</FrameHeight></HTMLQuestion>"
)


class Door:
    """Signs AWS JSON calls as botocore does and posts them with httpx."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, key_id: str, secret: str) -> None:
        self.http = http
        self.endpoint = endpoint
        self.credentials = Credentials(key_id, secret)

    def sign(self, operation: str, params: dict[str, Any]) -> AWSRequest:
        request = AWSRequest(
            method="POST",
            url=self.endpoint,
            data=dumps(params),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET + operation,
                "amz-sdk-invocation-id": str(uuid.uuid4()),
            },
        )
        SigV4Auth(self.credentials, "mturk-requester", REGION).add_auth(request)
        return request

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        request = self.sign(operation, params)
        resp = await self.http.post(
            request.url, content=request.body, headers=dict(request.headers.items())
        )
        if resp.status_code != 200:
            raise RuntimeError(f"{operation}: {resp.status_code} {resp.text[:300]}")
        return resp.json()


def create_hit_params(title: str) -> dict[str, Any]:
    return {
        "Title": title,
        "Description": "Say whether the picture shows a cat or a dog.",
        "Reward": "0.01",
        "MaxAssignments": 1,
        "LifetimeInSeconds": 86400,
        "AssignmentDurationInSeconds": 600,
        "AutoApprovalDelayInSeconds": 86400,
        "Question": HTML_QUESTION,
    }


FIRST_ERRORS: list[str] = []


async def run_phase(
    make_call: Callable[[], Awaitable[None]], *, concurrency: int, seconds: float
) -> tuple[float, int]:
    """Requests/s answered successfully by `concurrency` loops in `seconds`; and the errors
    (the first few are kept in FIRST_ERRORS and printed)."""
    done = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            try:
                await make_call()
                done += 1
            except Exception as exc:
                errors += 1
                if len(FIRST_ERRORS) < 5:
                    FIRST_ERRORS.append(f"{type(exc).__name__}: {exc}"[:300])

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - started), errors


async def setup(urls: dict[str, str], http: httpx.AsyncClient) -> dict[str, Any]:
    async def sign_up(kind: str) -> dict[str, Any]:
        resp = await http.post(
            f"{urls['workers']}/v1/accounts",
            json={
                "kind": kind,
                "name": f"bench {kind}",
                "email": f"bench-mturk-{uuid.uuid4().hex[:12]}@example.com",
            },
        )
        resp.raise_for_status()
        return resp.json()

    requester = await sign_up("requester")
    auth = {"Authorization": f"Bearer {requester['api_key']}"}
    (
        await http.post(
            f"{urls['payments']}/v1/deposits", json={"amount": "90000.00"}, headers=auth
        )
    ).raise_for_status()
    creds = (
        await http.post(f"{urls['workers']}/v1/accounts/me/mturk-credentials", headers=auth)
    ).json()
    door = Door(http, urls["tasks"] + "/mturk", creds["access_key_id"], creds["secret_access_key"])

    # The HIT type both CreateHIT sides add to; its stored task input, for the native side.
    first = (await door.call("CreateHIT", create_hit_params("bench create")))["HIT"]
    task = await http.get(f"{urls['tasks']}/v1/tasks/{first['HITId']}", headers=auth)
    task.raise_for_status()
    create_type = first["HITTypeId"]
    create_input = task.json()["input"]

    # One HIT of 10 assignments in its own HIT type, all submitted by native workers.
    params = create_hit_params("bench list") | {"MaxAssignments": 10}
    hit = (await door.call("CreateHIT", params))["HIT"]
    for _ in range(10):
        worker = await sign_up("worker")
        wauth = {"Authorization": f"Bearer {worker['api_key']}"}
        accepted = await http.post(
            f"{urls['tasks']}/v1/work/projects/{hit['HITTypeId']}/accept", headers=wauth
        )
        accepted.raise_for_status()
        submitted = await http.post(
            f"{urls['tasks']}/v1/assignments/{accepted.json()['assignment_id']}/submit",
            json={"answer": {"fields": {"label": "cat"}}},
            headers=wauth,
        )
        submitted.raise_for_status()
    return {
        "auth": auth,
        "door": door,
        "create_type": create_type,
        "create_input": create_input,
        "list_hit": hit["HITId"],
        "list_type": hit["HITTypeId"],
    }


async def compare(
    urls: dict[str, str], *, seconds: float, rounds: int, concurrency: int
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        ctx = await setup(urls, http)
        door: Door = ctx["door"]
        auth = ctx["auth"]

        async def door_create() -> None:
            await door.call("CreateHIT", create_hit_params("bench create"))

        async def native_create() -> None:
            resp = await http.post(
                f"{urls['tasks']}/v1/projects/{ctx['create_type']}/tasks",
                json={"tasks": [{"input": ctx["create_input"]}]},
                headers=auth,
            )
            if resp.status_code != 201:
                raise RuntimeError(resp.text[:300])

        async def door_list() -> None:
            out = await door.call(
                "ListAssignmentsForHIT", {"HITId": ctx["list_hit"], "MaxResults": 10}
            )
            if out["NumResults"] != 10:
                raise RuntimeError(f"listed {out['NumResults']}")

        async def native_list() -> None:
            resp = await http.get(
                f"{urls['tasks']}/v1/projects/{ctx['list_type']}/assignments",
                params={"status": "submitted", "limit": 10},
                headers=auth,
            )
            if resp.status_code != 200 or len(resp.json()["items"]) != 10:
                raise RuntimeError(resp.text[:300])

        results: dict[str, Any] = {}
        for name, door_call, native_call in (
            ("CreateHIT", door_create, native_create),
            ("ListAssignmentsForHIT", door_list, native_list),
        ):
            # Warm-up of each side (connections, caches, prepared statements).
            await run_phase(door_call, concurrency=concurrency, seconds=min(2.0, seconds))
            await run_phase(native_call, concurrency=concurrency, seconds=min(2.0, seconds))
            door_rates, native_rates, errors = [], [], 0
            for _ in range(rounds):
                rate, errs = await run_phase(door_call, concurrency=concurrency, seconds=seconds)
                door_rates.append(rate)
                errors += errs
                rate, errs = await run_phase(native_call, concurrency=concurrency, seconds=seconds)
                native_rates.append(rate)
                errors += errs
            door_median = statistics.median(door_rates)
            native_median = statistics.median(native_rates)
            results[name] = {
                "door_per_s": [round(r, 1) for r in door_rates],
                "native_per_s": [round(r, 1) for r in native_rates],
                "ratio": round(door_median / native_median, 3) if native_median else None,
                "errors": errors,
            }
    return results


def sigv4_costs(iterations: int = 3000) -> dict[str, float]:
    """Microseconds to verify one signed request (the door's function, a cached signing key)
    and to sign one (what the client spends)."""
    from starlette.requests import Request

    from services.tasks.mturk.auth import _parse_authorization, verify_signature

    credentials = Credentials("AKMTBENCHBENCHBENCH0", "s" * 40)
    body = dumps(create_hit_params("bench verify"))

    def signed() -> AWSRequest:
        request = AWSRequest(
            method="POST",
            url="http://127.0.0.1:8001/mturk",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET + "CreateHIT",
                "amz-sdk-invocation-id": str(uuid.uuid4()),
            },
        )
        SigV4Auth(credentials, "mturk-requester", REGION).add_auth(request)
        return request

    started = time.perf_counter()
    for _ in range(iterations):
        request = signed()
    sign_us = (time.perf_counter() - started) / iterations * 1e6
    headers = [(b"host", b"127.0.0.1:8001")] + [
        (k.lower().encode(), v.encode()) for k, v in request.headers.items()
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mturk",
        "raw_path": b"/mturk",
        "query_string": b"",
        "headers": headers,
    }
    starlette_request = Request(scope)
    key_id, day, region, signed_headers, signature = _parse_authorization(starlette_request)
    amz_date = starlette_request.headers["x-amz-date"]
    started = time.perf_counter()
    for _ in range(iterations):
        _parse_authorization(starlette_request)
        verify_signature(
            starlette_request,
            body,
            access_key_id=key_id,
            secret="s" * 40,
            day=day,
            region=region,
            signed_headers=signed_headers,
            signature=signature,
            amz_date=amz_date,
        )
    verify_us = (time.perf_counter() - started) / iterations * 1e6
    return {"verify_us": round(verify_us, 1), "sign_us": round(sign_us, 1)}


def report(results: dict[str, Any], costs: dict[str, float], load: str) -> None:
    print(f"\nMTurk door vs native, same run (noisy: shared machine, {load})")
    for name, r in results.items():
        print(
            f"  {name:<22} door {r['door_per_s']} /s   native {r['native_per_s']} /s   "
            f"ratio {r['ratio']}   errors {r['errors']}"
        )
    print(
        f"  SigV4 verification alone: {costs['verify_us']} us per request "
        f"(signing one, client side: {costs['sign_us']} us)"
    )
    for error in FIRST_ERRORS:
        print(f"  error: {error}")
    for name, r in results.items():
        door_rate = statistics.median(r["door_per_s"]) if r["door_per_s"] else 0
        if door_rate:
            share = costs["verify_us"] / (1e6 / door_rate) * 100
            print(f"  {name}: verification is {share:.1f}% of the door's time per request")


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tasks-workers", type=int, default=1)
    args = parser.parse_args(argv)
    from bench.stack import local_stack

    costs = sigv4_costs()
    with local_stack(tasks_workers=args.tasks_workers, pool_size=None) as (stack, _group):
        results = asyncio.run(
            compare(
                stack.urls,
                seconds=args.seconds,
                rounds=args.rounds,
                concurrency=args.concurrency,
            )
        )
    load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    report(results, costs, load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
