"""Qualification answer keys and attempt answers with hostile numbers.

An answer key's `correct` number and a worker's number answer must be finite: NaN and Infinity
are no JSON numbers, PostgreSQL's jsonb cannot hold them, and no answer could equal NaN. They
are refused with 422 whether they come as JSON tokens (the kit refuses those in any body) or as
Python floats reaching the models and the scoring directly. (Answer keys hold no patterns or
schemas: text answers are compared trimmed and case-folded, never as regexes.)
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from services.workers.attempts.scoring import answer_errors, is_correct
from services.workers.qualification_types.schemas import (
    AnswerKey,
    AnswerKeyEntry,
    QualificationTypeCreate,
    QualificationTypeUpdate,
    Question,
)
from services.workers.qualification_types.schemas import (
    Test as QualificationTest,
)
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.workers import (
    ALL_CORRECT,
    SAMPLE_KEY,
    SAMPLE_TEST,
    create_type,
    start,
    submit,
)

NON_FINITE = [float("nan"), float("inf"), -float("inf")]
TOKENS = ["NaN", "Infinity", "-Infinity"]
JSON = {"content-type": "application/json"}


def _key_with(value: Any) -> dict[str, Any]:
    key = copy.deepcopy(SAMPLE_KEY)
    key["answers"]["q4"]["correct"] = value
    return key


@pytest.mark.parametrize("value", NON_FINITE)
def test_answer_key_models_refuse_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValidationError):
        AnswerKeyEntry(correct=value)
    with pytest.raises(ValidationError):
        AnswerKey.model_validate(_key_with(value))
    with pytest.raises(ValidationError):
        QualificationTypeCreate.model_validate(
            {"name": "x", "test": SAMPLE_TEST, "answer_key": _key_with(value)}
        )
    with pytest.raises(ValidationError):
        QualificationTypeUpdate.model_validate({"answer_key": _key_with(value)})
    # finite floats and ints still work
    assert AnswerKeyEntry(correct=4.5).correct == 4.5
    assert AnswerKeyEntry(correct=42).correct == 42


@pytest.mark.parametrize("value", NON_FINITE)
def test_scoring_refuses_non_finite_answers(value: float) -> None:
    test = QualificationTest.model_validate(SAMPLE_TEST)
    [error] = answer_errors(test.questions, {"q4": value})
    assert error["loc"] == ["body", "answers", "q4"]
    number = Question(id="n", prompt="?", kind="number")
    assert is_correct(number, 42, value) is False
    assert is_correct(number, value, value) is False


async def _post_raw(
    client: httpx.AsyncClient, method: str, path: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, path, content=body, headers={**headers, **JSON})


def _with_token(document: dict[str, Any], token: str) -> bytes:
    """`document` as JSON with the placeholder number 1234567.25 replaced by a bare token."""
    raw = orjson.dumps(document)
    assert raw.count(b"1234567.25") == 1
    return raw.replace(b"1234567.25", token.encode())


@pytest.mark.parametrize("token", TOKENS)
async def test_non_finite_answer_keys_are_422_on_create_and_update(
    workers_client: httpx.AsyncClient, db, token: str
) -> None:
    owner = await create_requester(workers_client)
    body = {
        "name": f"numbers {token}",
        "test": SAMPLE_TEST,
        "answer_key": _key_with(1234567.25),
    }
    resp = await _post_raw(
        workers_client, "POST", "/v1/qualification-types", _with_token(body, token), owner.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    count = "SELECT count(*) FROM qualification_types WHERE owner_id = $1"
    assert await db.fetchval(count, owner.id) == 0

    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    resp = await _post_raw(
        workers_client,
        "PATCH",
        f"/v1/qualification-types/{qtype['id']}",
        _with_token({"answer_key": _key_with(1234567.25)}, token),
        owner.headers,
    )
    assert resp.status_code == 422, resp.text
    stored = await db.fetchval(
        "SELECT answer_key::text FROM qualification_types WHERE id = $1", qtype["id"]
    )
    assert orjson.loads(stored)["answers"]["q4"]["correct"] == 42


@pytest.mark.parametrize("token", TOKENS)
async def test_non_finite_attempt_answers_are_422_and_the_attempt_stays_open(
    workers_client: httpx.AsyncClient, db, token: str
) -> None:
    owner = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    qtype = await create_type(workers_client, owner, test=SAMPLE_TEST, answer_key=SAMPLE_KEY)
    attempt = (await start(workers_client, worker, qtype["id"])).json()
    body = _with_token({"answers": {**ALL_CORRECT, "q4": 1234567.25}}, token)
    resp = await _post_raw(
        workers_client,
        "POST",
        f"/v1/qualification-attempts/{attempt['attempt_id']}/submit",
        body,
        worker.headers,
    )
    assert resp.status_code == 422, resp.text
    status = await db.fetchval(
        "SELECT status FROM qualification_attempts WHERE id = $1", attempt["attempt_id"]
    )
    assert status == "started"
    good = await submit(workers_client, worker, attempt["attempt_id"], ALL_CORRECT)
    assert good.status_code == 200, good.text
