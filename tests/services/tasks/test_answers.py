"""Answer schemas per task type, validation messages and locations, the validator cache."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.tasks.answers import (
    answer_schema_for,
    schema_problems,
    validate_answer,
    validator_for,
)


def _schema(task_type: str, **kw: Any) -> dict[str, Any]:
    return answer_schema_for(
        task_type=task_type,
        labels=kw.get("labels"),
        multi_label=kw.get("multi_label", False),
        answer_schema=kw.get("answer_schema"),
    )


BOX = {"label": "car", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4}
FREE = {
    "type": "object",
    "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["rating"],
}

CASES: list[tuple[str, dict[str, Any], Any, bool]] = [
    ("classification", {"labels": ["a", "b"]}, {"label": "a"}, True),
    ("classification", {"labels": ["a", "b"]}, {"label": "c"}, False),
    ("classification", {"labels": ["a", "b"]}, {"label": "a", "extra": 1}, False),
    ("classification", {"labels": ["a", "b"]}, {}, False),
    ("classification", {"labels": ["a", "b"]}, "a", False),
    ("classification", {"labels": ["a", "b"], "multi_label": True}, {"labels": ["a", "b"]}, True),
    ("classification", {"labels": ["a", "b"], "multi_label": True}, {"labels": []}, False),
    ("classification", {"labels": ["a", "b"], "multi_label": True}, {"labels": ["a", "a"]}, False),
    ("classification", {"labels": ["a", "b"], "multi_label": True}, {"label": "a"}, False),
    ("sentiment", {}, {"label": "neutral"}, True),
    ("sentiment", {}, {"label": "angry"}, False),
    ("transcription", {}, {"text": ""}, True),
    ("transcription", {}, {"text": 5}, False),
    ("bounding_box", {}, {"boxes": []}, True),
    ("bounding_box", {}, {"boxes": [BOX]}, True),
    ("bounding_box", {"labels": ["car"]}, {"boxes": [BOX]}, True),
    ("bounding_box", {"labels": ["bus"]}, {"boxes": [BOX]}, False),
    ("bounding_box", {}, {"boxes": [{**BOX, "x": 1.5}]}, False),
    ("bounding_box", {}, {"boxes": [{**BOX, "width": -0.1}]}, False),
    ("bounding_box", {}, {"boxes": [{k: v for k, v in BOX.items() if k != "height"}]}, False),
    ("free_form", {"answer_schema": FREE}, {"rating": 3}, True),
    ("free_form", {"answer_schema": FREE}, {"rating": 9}, False),
    ("free_form", {"answer_schema": FREE}, {"rating": 3, "comment": "free form allows"}, True),
]


@pytest.mark.parametrize(("task_type", "settings", "answer", "valid"), CASES)
def test_answers_per_task_type(
    task_type: str, settings: dict[str, Any], answer: Any, valid: bool
) -> None:
    problems = validate_answer(_schema(task_type, **settings), answer)
    assert (problems == []) is valid, problems
    assert all(set(p) == {"loc", "msg"} and p["msg"] for p in problems)


def test_problems_point_inside_the_answer() -> None:
    problems = validate_answer(_schema("bounding_box"), {"boxes": [BOX, {**BOX, "y": 2}]})
    assert problems == [{"loc": ["boxes", 1, "y"], "msg": "2 is greater than the maximum of 1"}]
    [unknown] = validate_answer(_schema("sentiment"), {"label": "positive", "why": "x"})
    assert unknown == {"loc": [], "msg": "unknown field(s): why"}
    [label] = validate_answer(_schema("classification", labels=["a", "b"]), {"label": "z"})
    assert label == {"loc": ["label"], "msg": 'must be one of "a", "b"'}


@pytest.mark.parametrize(
    ("schema", "ok"),
    [
        (FREE, True),
        ({"type": "object"}, True),
        ({"type": "array"}, False),
        ({"type": "object", "properties": {"a": {"type": "nope"}}}, False),
        ({"type": "object", "minProperties": -1}, False),
        ([], False),
    ],
)
def test_free_form_schemas_are_checked(schema: Any, ok: bool) -> None:
    assert (schema_problems(schema) == []) is ok


def test_validators_are_compiled_once_per_schema() -> None:
    schema = _schema("classification", labels=[f"label-{i}" for i in range(50)])
    same = _schema("classification", labels=[f"label-{i}" for i in range(50)])
    assert validator_for(schema) is validator_for(same)  # equal content, one compiled validator
    answer = {"label": "label-42"}
    start = time.perf_counter()
    for _ in range(5_000):
        assert validate_answer(schema, answer) == []
    per_call = (time.perf_counter() - start) / 5_000
    print(f"validate_answer: {per_call * 1e6:.1f} us per call")
