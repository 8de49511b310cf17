"""The JSON Schema an answer must satisfy, and answer validation.

Built-in task types derive their schema from the project's settings (labels, multi_label), so a
requester never writes one; `free_form` projects bring their own. Validation runs on the submit
hot path, so compiled validators are cached by the schema's canonical JSON: building a
`Draft202012Validator` costs far more than checking one small answer with it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

TaskType = Literal["classification", "sentiment", "transcription", "bounding_box", "free_form"]
TASK_TYPES: tuple[str, ...] = (
    "classification",
    "sentiment",
    "transcription",
    "bounding_box",
    "free_form",
)
SENTIMENT_LABELS: tuple[str, ...] = ("positive", "negative", "neutral")
MAX_ERRORS_PER_ANSWER = 20

_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}


def answer_schema_for(
    *,
    task_type: str,
    labels: Sequence[str] | None,
    multi_label: bool,
    answer_schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one answer for a project with these settings.

    Built-in types forbid unknown keys (`additionalProperties: false`) so typos in a worker app
    surface as 422 instead of silently losing data.
    """
    if task_type == "classification":
        label_enum = list(labels or [])
        if multi_label:
            return _object(
                {
                    "labels": {
                        "type": "array",
                        "items": {"enum": label_enum},
                        "minItems": 1,
                        "uniqueItems": True,
                    }
                }
            )
        return _object({"label": {"enum": label_enum}})
    if task_type == "sentiment":
        return _object({"label": {"enum": list(SENTIMENT_LABELS)}})
    if task_type == "transcription":
        return _object({"text": {"type": "string"}})
    if task_type == "bounding_box":
        box_label: dict[str, Any] = {"enum": list(labels)} if labels else {"type": "string"}
        box = _object(
            {
                "label": box_label,
                "x": _FRACTION,
                "y": _FRACTION,
                "width": _FRACTION,
                "height": _FRACTION,
            }
        )
        return _object({"boxes": {"type": "array", "items": box}})
    if task_type == "free_form":
        if answer_schema is None:
            raise ValueError("a free_form project needs an answer_schema")
        return answer_schema
    raise ValueError(f"unknown task type {task_type!r}")


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` cannot be a free_form project's answer schema (empty when it can).

    It must be a valid Draft 2020-12 schema describing a JSON object: answers are stored as
    objects, and the results export puts them in one JSON cell each.
    """
    if not isinstance(schema, dict):
        return ["answer_schema must be a JSON object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return [
            f"answer_schema is not a valid JSON Schema: {exc.message}"
            + (f" at /{where}" if where else "")
        ]
    if schema.get("type") != "object":
        return ['answer_schema must describe an object ("type": "object")']
    return []


class _ValidatorCache:
    """A small LRU of compiled validators keyed by the schema's canonical JSON bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, Draft202012Validator] = OrderedDict()
        self._lock = Lock()

    def get(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        validator = Draft202012Validator(schema)
        with self._lock:
            self._items[key] = validator
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return validator


_validators = _ValidatorCache(size=1024)


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    return _validators.get(schema)


def validate_answer(schema: dict[str, Any], answer: Any) -> list[dict[str, Any]]:
    """Problems of `answer` against `schema` as `[{"loc": [...], "msg": ...}]`; empty when valid.

    `loc` is the path inside the answer (e.g. `["boxes", 0, "x"]`); callers prefix it with where
    the answer sits in their request (`["body", "answer"]`, `["tasks", 3, "gold_answer"]`).
    """
    validator = validator_for(schema)
    problems: list[dict[str, Any]] = []
    for error in sorted(validator.iter_errors(answer), key=_error_order):
        problems.append({"loc": list(error.absolute_path), "msg": _message(error)})
        if len(problems) >= MAX_ERRORS_PER_ANSWER:
            break
    return problems


def _error_order(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(p) for p in error.absolute_path)


def _message(error: ValidationError) -> str:
    if error.validator == "enum":
        allowed = ", ".join(orjson.dumps(v).decode() for v in error.validator_value)
        return f"must be one of {allowed}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        if extra:
            return "unknown field(s): " + ", ".join(extra)
    return error.message
