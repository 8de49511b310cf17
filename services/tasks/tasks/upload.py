"""Parsing task uploads: JSON, CSV and NDJSON bodies into one list of tasks.

All-or-nothing: a parser never stops at the first broken row. It collects one problem per broken
field with the row's place (`["tasks", i]` for JSON, `["line", n]` for CSV and NDJSON, 1-based
physical lines, the CSV header being line 1), so a requester fixes a 10,000-row file in one round.
Field-level detail goes in `msg` ("gold_answer: ..."). The parsers do no I/O; the answer schema
check of gold answers happens in the service, which knows the project.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shared.app_factory import MAX_JSON_DEPTH, scan_json_text
from shared.errors import MalformedJSON, UnsupportedMediaType, ValidationFailed

TASK_FIELDS = frozenset({"input", "gold_answer", "external_id", "max_assignments", "explanation"})
CSV_RESERVED = frozenset({"gold_answer", "external_id", "max_assignments", "explanation"})
MAX_EXTERNAL_ID = 255
MAX_PROBLEMS = 20_000

JSON_TYPES = frozenset({"application/json"})
CSV_TYPES = frozenset({"text/csv"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/ndjson"})


@dataclass(slots=True)
class UploadedTask:
    input: dict[str, Any]
    gold_answer: Any | None
    external_id: str | None
    max_assignments: int | None
    loc: list[str | int]
    # Why the gold answer is right (training projects); its type is checked with the project
    # (services/tasks/training: text of at most 10,000 characters).
    explanation: Any = None


@dataclass(slots=True)
class ParsedUpload:
    tasks: list[UploadedTask]
    problems: list[dict[str, Any]]


def parse_upload(content_type: str | None, body: bytes, *, max_tasks: int) -> ParsedUpload:
    """Dispatch on the media type; 415 for any other, 400 for a JSON body that is not JSON."""
    media_type, charset = _media_type(content_type)
    if charset not in (None, "utf-8", "utf8"):
        raise UnsupportedMediaType("Task uploads must be UTF-8.")
    if media_type in JSON_TYPES:
        parsed = _parse_json(body, max_tasks)
    elif media_type in CSV_TYPES:
        parsed = _parse_csv(body, max_tasks)
    elif media_type in NDJSON_TYPES:
        parsed = _parse_ndjson(body, max_tasks)
    else:
        raise UnsupportedMediaType(
            "Upload tasks as application/json, text/csv or application/x-ndjson."
        )
    if not parsed.tasks and not parsed.problems:
        raise ValidationFailed(
            "The upload holds no tasks.", errors=[{"loc": ["tasks"], "msg": "no tasks"}]
        )
    return parsed


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media_type, *params = (part.strip() for part in content_type.split(";"))
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media_type.lower(), charset


def _too_many(max_tasks: int) -> ValidationFailed:
    return ValidationFailed(
        f"An upload holds at most {max_tasks} tasks; split it into several calls.",
        code="too_many_tasks",
        errors=[{"loc": ["tasks"], "msg": f"at most {max_tasks} tasks per upload"}],
    )


class _Row:
    """Collects the problems of one row; `msg` names the field."""

    __slots__ = ("loc", "problems")

    def __init__(self, loc: list[str | int], problems: list[dict[str, Any]]) -> None:
        self.loc = loc
        self.problems = problems

    def bad(self, field: str | None, msg: str) -> None:
        self.problems.append({"loc": self.loc, "msg": f"{field}: {msg}" if field else msg})


def _check_task_fields(
    row: _Row,
    *,
    input_value: Any,
    gold_answer: Any,
    external_id: Any,
    max_assignments: Any,
    explanation: Any = None,
) -> UploadedTask | None:
    before = len(row.problems)
    if not isinstance(input_value, dict):
        row.bad("input", "must be a JSON object")
    if external_id is not None and (
        not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_EXTERNAL_ID
    ):
        row.bad("external_id", f"must be a string of 1-{MAX_EXTERNAL_ID} characters")
    if max_assignments is not None and (
        isinstance(max_assignments, bool)
        or not isinstance(max_assignments, int)
        or not 1 <= max_assignments <= 100
    ):
        row.bad("max_assignments", "must be an integer from 1 to 100")
    if len(row.problems) > before:
        return None
    return UploadedTask(
        input=input_value,
        gold_answer=gold_answer,
        external_id=external_id,
        max_assignments=max_assignments,
        loc=row.loc,
        explanation=explanation,
    )


def _well_formed(obj: Any, loc: list[str | int]) -> UploadedTask | None:
    """The fast path for a row with nothing wrong (nearly all of them): type checks only, no
    problem bookkeeping. None sends the row to `_task_from_object` for the full report."""
    if type(obj) is not dict or not obj.keys() <= TASK_FIELDS:
        return None
    input_value = obj.get("input")
    external_id = obj.get("external_id")
    max_assignments = obj.get("max_assignments")
    if (
        type(input_value) is dict
        and (external_id is None or (type(external_id) is str and 0 < len(external_id) <= 255))
        and (
            max_assignments is None or (type(max_assignments) is int and 0 < max_assignments <= 100)
        )
    ):
        return UploadedTask(
            input_value,
            obj.get("gold_answer"),
            external_id,
            max_assignments,
            loc,
            obj.get("explanation"),
        )
    return None


def _task_from_object(obj: Any, row: _Row) -> UploadedTask | None:
    if not isinstance(obj, dict):
        row.bad(None, "a task must be a JSON object with an input")
        return None
    unknown = sorted(k for k in obj if k not in TASK_FIELDS)
    if unknown:
        row.bad(None, "unknown field(s): " + ", ".join(unknown))
    if "input" not in obj:
        row.bad("input", "is required")
        return None
    task = _check_task_fields(
        row,
        input_value=obj["input"],
        gold_answer=obj.get("gold_answer"),
        external_id=obj.get("external_id"),
        max_assignments=obj.get("max_assignments"),
        explanation=obj.get("explanation"),
    )
    return None if unknown else task


def _parse_json(body: bytes, max_tasks: int) -> ParsedUpload:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON("The request body is not valid JSON.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ValidationFailed(
            'The body must be {"tasks": [...]}.',
            errors=[{"loc": ["tasks"], "msg": "a list of tasks is required"}],
        )
    unknown = sorted(k for k in data if k != "tasks")
    if unknown:
        raise ValidationFailed(
            "Unknown field(s): " + ", ".join(unknown),
            errors=[{"loc": [k], "msg": "unknown field"} for k in unknown],
        )
    items = data["tasks"]
    if len(items) > max_tasks:
        raise _too_many(max_tasks)
    tasks: list[UploadedTask] = []
    problems: list[dict[str, Any]] = []
    for i, obj in enumerate(items):
        task = _well_formed(obj, ["tasks", i])
        if task is not None:
            tasks.append(task)
            continue
        task = _task_from_object(obj, _Row(["tasks", i], problems))
        if task is not None:
            tasks.append(task)
        if len(problems) >= MAX_PROBLEMS:
            break
    return ParsedUpload(tasks, problems)


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(body.split(b"\n"), start=1):
        yield n, line.rstrip(b"\r")


def _parse_ndjson(body: bytes, max_tasks: int) -> ParsedUpload:
    tasks: list[UploadedTask] = []
    problems: list[dict[str, Any]] = []
    seen = 0
    for n, line in _lines(body):
        if not line.strip():
            continue
        seen += 1
        if seen > max_tasks:
            raise _too_many(max_tasks)
        row = _Row(["line", n], problems)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            row.bad(None, f"not valid JSON ({exc})")
            continue
        task = _well_formed(obj, row.loc) or _task_from_object(obj, row)
        if task is not None:
            tasks.append(task)
        if len(problems) >= MAX_PROBLEMS:
            break
    return ParsedUpload(tasks, problems)


def _json_cell(row: _Row, field: str, cell: str) -> tuple[bool, Any]:
    # A JSON cell is a body of its own inside the CSV: the same depth and NUL guards apply as
    # to JSON bodies (the request middleware only sees the CSV around it).
    refusal = scan_json_text(cell.encode(), max_depth=MAX_JSON_DEPTH, per_line=False)
    if refusal is not None:
        row.bad(
            field,
            f"is nested deeper than {MAX_JSON_DEPTH} levels"
            if refusal[0] == "deep"
            else "contains a NUL character",
        )
        return False, None
    try:
        return True, orjson.loads(cell)
    except orjson.JSONDecodeError:
        row.bad(field, "is not valid JSON")
        return False, None


def _parse_csv(body: bytes, max_tasks: int) -> ParsedUpload:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            "The CSV body is not UTF-8.",
            errors=[{"loc": ["body"], "msg": f"not UTF-8 at byte {exc.start}"}],
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[dict[str, Any]] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _csv_header_error(f"unreadable header ({exc})") from exc
    if header is None:
        return ParsedUpload([], [])
    names = [h.strip() for h in header]
    if any(not name for name in names):
        raise _csv_header_error("every column needs a name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _csv_header_error("duplicate column(s): " + ", ".join(duplicates))
    has_input_column = "input" in names
    input_keys = [name for name in names if name not in CSV_RESERVED and name != "input"]
    if has_input_column and input_keys:
        raise _csv_header_error(
            "with an input column (JSON), the other columns may only be gold_answer, "
            "external_id, max_assignments and explanation; found " + ", ".join(input_keys)
        )
    if not has_input_column and not input_keys:
        raise _csv_header_error("no input: add an input column (JSON) or one column per field")
    build = _csv_row_builder(names, has_input_column)

    tasks: list[UploadedTask] = []
    seen = 0
    last_line = reader.line_num
    while True:
        start_line = last_line + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            problems.append({"loc": ["line", start_line], "msg": f"unreadable CSV ({exc})"})
            break
        if cells is None:
            break
        last_line = reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        seen += 1
        if seen > max_tasks:
            raise _too_many(max_tasks)
        row = _Row(["line", start_line], problems)
        if len(cells) != len(names):
            row.bad(None, f"has {len(cells)} cells; the header has {len(names)} columns")
            continue
        task = build(cells, row)
        if task is not None:
            tasks.append(task)
        if len(problems) >= MAX_PROBLEMS:
            break
    return ParsedUpload(tasks, problems)


def _csv_header_error(msg: str) -> ValidationFailed:
    return ValidationFailed(f"CSV header: {msg}", errors=[{"loc": ["line", 1], "msg": msg}])


def _csv_row_builder(
    names: list[str], has_input_column: bool
) -> Callable[[list[str], _Row], UploadedTask | None]:
    index = {name: i for i, name in enumerate(names)}
    input_columns = [(name, i) for i, name in enumerate(names) if name not in CSV_RESERVED]

    def build(cells: list[str], row: _Row) -> UploadedTask | None:
        ok = True
        if has_input_column:
            ok, input_value = _json_cell(row, "input", cells[index["input"]])
            if not ok:
                input_value = {}  # reported once, as invalid JSON
        else:
            input_value = {name: cells[i] for name, i in input_columns}
        gold_answer = None
        if "gold_answer" in index and cells[index["gold_answer"]].strip():
            gold_ok, gold_answer = _json_cell(row, "gold_answer", cells[index["gold_answer"]])
            ok = ok and gold_ok
        external_id = None
        if "external_id" in index and cells[index["external_id"]] != "":
            external_id = cells[index["external_id"]]
        max_assignments: Any = None
        if "max_assignments" in index and cells[index["max_assignments"]].strip():
            raw = cells[index["max_assignments"]].strip()
            max_assignments = int(raw) if raw.isdigit() else raw
        explanation = None
        if "explanation" in index and cells[index["explanation"]].strip():
            explanation = cells[index["explanation"]]
        task = _check_task_fields(
            row,
            input_value=input_value,
            gold_answer=gold_answer,
            external_id=external_id,
            max_assignments=max_assignments,
            explanation=explanation,
        )
        return task if ok else None

    return build
