"""Answer keys with scored options and the scale and range mappings (MTurk's AnswerKey forms,
available natively): created through the public API, scored by a real attempt."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import SAMPLE_TEST, create_type, start, submit

OPTIONS_KEY: dict[str, Any] = {
    "answers": {
        "q1": {"options": [{"selections": ["a"], "score": 4}], "default_score": 1},
        "q2": {
            "options": [
                {"selections": ["two", "three"], "score": 6},
                {"selections": ["two"], "score": 3},
            ]
        },
        "q3": {"correct": "Paris", "score": 2},
    },
    "mapping": "range",
    "ranges": [{"low": 0, "high": 4, "value": 1}, {"low": 5, "high": 9, "value": 2}],
    "out_of_range_value": 3,
}


async def _granted(client: httpx.AsyncClient, type_id: str, answers: dict[str, Any]) -> dict:
    worker = await create_worker(client)
    started = await start(client, worker, type_id)
    assert started.status_code == 201, started.text
    result = await submit(client, worker, started.json()["attempt_id"], answers)
    assert result.status_code == 200, result.text
    return result.json()


async def test_scored_options_and_range_mapping(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=OPTIONS_KEY)
    shown = qtype["answer_key"]
    # fields of other forms are left out (`score` has its default, 1, unused with options)
    assert {
        q: {k: v for k, v in e.items() if k != "score"} for q, e in shown["answers"].items()
    } == {
        q: {k: v for k, v in e.items() if k != "score"} for q, e in OPTIONS_KEY["answers"].items()
    }
    assert {k: v for k, v in shown.items() if k != "answers"} == {
        k: v for k, v in OPTIONS_KEY.items() if k != "answers"
    }
    # q1 wrong (default 1) + q2 partly (3) = 4 -> range 0-4
    partly = await _granted(workers_client, qtype["id"], {"q1": "b", "q2": ["two"]})
    assert (partly["points"], partly["max_points"], partly["value"]) == (4, 12, 1)
    # 4 + 6 = 10 -> out of range; + Paris = 12 -> out of range as well
    best = await _granted(
        workers_client, qtype["id"], {"q1": "a", "q2": ["three", "two"], "q3": "paris"}
    )
    assert (best["points"], best["value"]) == (12, 3)
    middle = await _granted(workers_client, qtype["id"], {"q1": "a", "q3": "Paris"})
    assert (middle["points"], middle["value"]) == (6, 2)


async def test_scale_mapping_and_refusals(workers_client: httpx.AsyncClient) -> None:
    owner = await create_requester(workers_client)
    key = {"answers": {"q4": {"correct": 42, "score": 3}}, "mapping": "scale", "multiplier": 1.5}
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=key)
    assert (await _granted(workers_client, qtype["id"], {"q4": 42}))["value"] == 5  # 4.5 up
    refused = [
        ({"answers": {"q3": {"options": [{"selections": ["x"], "score": 1}]}}}, "choice"),
        ({"answers": {"q1": {"options": [{"selections": ["zz"], "score": 1}]}}}, "options"),
        ({"answers": {"q1": {"correct": ["a"]}}, "mapping": "range"}, "needs ranges"),
    ]
    for answer_key, fragment in refused:
        resp = await workers_client.post(
            "/v1/qualification-types",
            json={"name": f"bad {fragment}", "test": SAMPLE_TEST, "answer_key": answer_key},
            headers=owner.headers,
        )
        assert resp.status_code == 422, resp.text
        assert fragment in resp.text
