"""The JSON Schema an answer must satisfy, and answer validation.

Built-in task types derive their schema from the project's settings (labels, multi_label), so a
requester never writes one; `free_form` projects bring their own, which is hostile input: it is
compiled by `shared.safe_schema` (local references only, bounded size, depth and work,
linear-time patterns, no format assertions; validation in Rust via jsonschema-rs). Validation
runs on the submit hot path, so compiled validators (and refusals) are cached by the schema's
canonical JSON. Every answer, whatever the task type, is refused when it carries NaN or
Infinity (orjson would store them as null).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Any, Literal

import orjson

from shared.safe_schema import (
    SafeValidator,
    UnsafeSchema,
    compile_schema,
    instance_issues,
    non_finite_paths,
)

TaskType = Literal[
    "classification", "sentiment", "transcription", "bounding_box", "free_form", "mturk_question"
]
TASK_TYPES: tuple[str, ...] = (
    "classification",
    "sentiment",
    "transcription",
    "bounding_box",
    "free_form",
    "mturk_question",
)
QUESTION_TASK_TYPE = "mturk_question"
"""Tasks carrying an MTurk question document (services/tasks/mturk/questions.py) in their input:
`{"question": <XML>, "question_type": "HTMLQuestion" | "ExternalQuestion" | "QuestionForm"}`.
The project-level schema below only fixes the answer's outer shape; the answer is checked
against the task's own question by `task_answer_problems`."""
SENTIMENT_LABELS: tuple[str, ...] = ("positive", "negative", "neutral")
MAX_ERRORS_PER_ANSWER = 20

_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}


MAX_BOXES = 500
"""Most boxes one bounding-box answer (or gold answer) may hold. Gold grading pairs boxes by
overlap, quadratic in their number: unbounded, one submit against a gold answer of tens of
thousands of boxes would hold the event loop for seconds. Real images rarely carry more than a
few hundred objects."""


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
        return _object({"boxes": {"type": "array", "items": box, "maxItems": MAX_BOXES}})
    if task_type == "free_form":
        if answer_schema is None:
            raise ValueError("a free_form project needs an answer_schema")
        return answer_schema
    if task_type == QUESTION_TASK_TYPE:
        return _QUESTION_ANSWER_SCHEMA
    raise ValueError(f"unknown task type {task_type!r}")


def task_input_problems(task_type: str, task_input: Any) -> list[str]:
    """Why a task's input does not suit its project's type (empty: it does). Only
    `mturk_question` constrains inputs: a question document MTurk would accept, of the kind
    `question_type` names."""
    if task_type != QUESTION_TASK_TYPE:
        return []
    from services.tasks.mturk.errors import MTurkRequestError
    from services.tasks.mturk.questions import QUESTION_KINDS, parse_question

    if not isinstance(task_input, dict) or not isinstance(task_input.get("question"), str):
        return ['an mturk_question task\'s input is {"question": "<XML>", "question_type": ...}']
    kind = task_input.get("question_type")
    if kind not in QUESTION_KINDS:
        return [f"question_type must be one of {', '.join(QUESTION_KINDS)}"]
    try:
        parsed = parse_question(task_input["question"])
    except MTurkRequestError as exc:
        return [f"question: {exc.message}"]
    if parsed.kind != kind:
        return [f"question_type is {kind} but the question is a {parsed.kind}"]
    return []


def task_answer_problems(task_type: str, task_input: Any, answer: Any) -> list[dict[str, Any]]:
    """Problems of a (project-schema-valid) answer against the task's own content: for
    `mturk_question`, the task's question (required questions, selection ids and counts,
    free-text constraints). Empty for every other type."""
    if task_type != QUESTION_TASK_TYPE:
        return []
    from services.tasks.mturk.answers import answer_problems
    from services.tasks.mturk.errors import MTurkRequestError
    from services.tasks.mturk.questions import parse_question

    question = task_input.get("question") if isinstance(task_input, dict) else None
    try:
        parsed = parse_question(question)  # type: ignore[arg-type]
    except MTurkRequestError:
        return [{"loc": [], "msg": "this task's question cannot be read; it takes no answers"}]
    return answer_problems(parsed, answer)[:MAX_ERRORS_PER_ANSWER]


def effective_answer_schema(project: Any) -> dict[str, Any]:
    """`answer_schema_for` a project's settings, read from anything that carries them (a project
    row, a discovery row, what accept kept)."""
    return answer_schema_for(
        task_type=project.task_type,
        labels=project.labels,
        multi_label=project.multi_label,
        answer_schema=project.answer_schema,
    )


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_QUESTION_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "oneOf": [
        _object(
            {
                "fields": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                }
            }
        ),
        _object({"answers": {"type": "object", "additionalProperties": {"type": "object"}}}),
    ],
}


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` cannot be a free_form project's answer schema (empty when it can).

    It must be a valid Draft 2020-12 schema describing a JSON object (answers are stored as
    objects, and the results export puts them in one JSON cell each), and a safe one
    (`shared.safe_schema`: local references only, size, depth and work limits, Rust regex
    patterns).
    """
    if not isinstance(schema, dict):
        return ["answer_schema must be a JSON object"]
    # Before the cache: its key is orjson's, which writes NaN as null.
    for path in non_finite_paths(schema, limit=1):
        where = "".join(f"/{p}" for p in path)
        return [f"answer_schema is not allowed: NaN and Infinity are not JSON numbers at {where}"]
    try:
        validator_for(schema)
    except UnsafeSchema as exc:
        return [f"answer_schema is not allowed: {exc}"]
    if schema.get("type") != "object":
        return ['answer_schema must describe an object ("type": "object")']
    return []


class _ValidatorCache:
    """A small LRU of compiled validators (or the reason a schema is refused) keyed by the
    schema's canonical JSON bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, SafeValidator | UnsafeSchema] = OrderedDict()
        self._lock = Lock()

    def get(self, schema: dict[str, Any]) -> SafeValidator:
        try:
            key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise UnsafeSchema(f"the schema cannot be serialized as JSON: {exc}") from exc
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
        if found is None:
            try:
                found = compile_schema(schema)
            except UnsafeSchema as exc:
                found = exc
            with self._lock:
                self._items[key] = found
                if len(self._items) > self.size:
                    self._items.popitem(last=False)
        if isinstance(found, UnsafeSchema):
            raise found
        return found


_validators = _ValidatorCache(size=1024)


def validator_for(schema: dict[str, Any]) -> SafeValidator:
    """The compiled validator of `schema`; UnsafeSchema when the schema is not allowed."""
    return _validators.get(schema)


def validate_answer(schema: dict[str, Any], answer: Any) -> list[dict[str, Any]]:
    """Problems of `answer` against `schema` as `[{"loc": [...], "msg": ...}]`; empty when valid.

    `loc` is the path inside the answer (e.g. `["boxes", 0, "x"]`); callers prefix it with where
    the answer sits in their request (`["body", "answer"]`, `["tasks", 3, "gold_answer"]`).
    NaN/Infinity anywhere, an answer too large for the schema's work budget, or a stored schema
    that is not allowed any more (saved before the rules) refuse the answer without validating.
    """
    try:
        validator = validator_for(schema)
    except UnsafeSchema as exc:
        return [
            {
                "loc": [],
                "msg": f"this project's answer schema is not accepted any more ({exc}); "
                "its owner must replace it",
            }
        ]
    issues = instance_issues(
        answer, cost_per_value=validator.cost_per_value, limit=MAX_ERRORS_PER_ANSWER
    )
    if issues:
        return [{"loc": i.path, "msg": i.msg} for i in issues[:MAX_ERRORS_PER_ANSWER]]
    errors = itertools.islice(validator.iter_errors(answer), MAX_ERRORS_PER_ANSWER * 50)
    problems: list[dict[str, Any]] = []
    for error in sorted(errors, key=_error_order):
        problems.append({"loc": list(error.instance_path), "msg": _message(error)})
        if len(problems) >= MAX_ERRORS_PER_ANSWER:
            break
    return problems


def _error_order(error: Any) -> tuple[str, ...]:
    return tuple(str(p) for p in error.instance_path)


def _message(error: Any) -> str:
    kind = error.kind
    if kind.name == "enum":
        allowed = ", ".join(orjson.dumps(v).decode() for v in kind.options)
        return f"must be one of {allowed}"
    if kind.name == "additionalProperties" and kind.unexpected:
        return "unknown field(s): " + ", ".join(sorted(map(str, kind.unexpected)))
    return str(error.message)
