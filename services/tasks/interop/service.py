"""Label Studio interop: the project's labeling config, the results export in LS's task format,
and the parser that turns an LS task export into a task upload.

Export (`GET /v1/projects/{id}/results?format=label_studio`): a JSON array of LS tasks, one per
task in upload order, streamed from one read-only repeatable-read snapshot like the other
results formats (services/tasks/results/service.py):
- `data`: the task input, unchanged; `meta`: `{task_id, external_id}`.
- `annotations`: the gold answer first, when the task has one (`ground_truth: true`, dated
  when the task was uploaded), then one per worker answer (submitted, approved and rejected,
  as in the results export) with `created_at` (submitted), `updated_at` (reviewed, else
  submitted), `lead_time` (seconds from accept to submit), `ground_truth: false`, and our
  `assignment_id`, `worker_id` and `status`.
  LS's own `completed_by` is left out: it names an LS user id, and LS refuses an import whose
  `completed_by` is not a member of the importing organization; LS keeps the annotation under
  the importing user and ignores our extra keys, which stay in our file.
- `predictions`: the aggregate of the requested method as one prediction, `model_version` the
  method's name and `score` its confidence (majority: the agreement); empty without one.

Import (`POST /v1/projects/{id}/label-studio/tasks`): parsed here into the same `ParsedUpload`
the native formats make, then the upload path (services/tasks/tasks/service.py: limits, gold
validation, COPY, money reservation; the route keeps Idempotency-Key) does the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from services.tasks.interop import repository
from services.tasks.interop.label_studio import (
    GoldSource,
    Layout,
    RegionProblem,
    answer_of,
    chosen_annotation,
    config_xml,
    image_size,
    layout_for,
    result_of,
)
from services.tasks.interop.repository import LabelStudioRow
from services.tasks.interop.schemas import LabelStudioConfig
from services.tasks.projects.repository import ProjectRow
from services.tasks.projects.service import load_project
from services.tasks.results.aggregate import WorkerAnswer
from services.tasks.tasks.upload import (
    JSON_TYPES,
    MAX_EXTERNAL_ID,
    MAX_PROBLEMS,
    ParsedUpload,
    UploadedTask,
    _media_type,
)
from shared.database import Database, Db
from shared.errors import MalformedJSON, UnsupportedMediaType, ValidationFailed

FLUSH_ROWS = 100
"""Most tasks encoded between two sends: an LS task costs a few times a results record (a box
answer ~0.1-0.3 ms: regions per box, percent conversions), and nothing else runs on the event
loop while a chunk is encoded; 100 keeps that under ~30 ms."""
MAX_BOX_LABELS = 1_000
"""Most distinct labels a label-free bounding_box project's config lists (LS draws a button per
label); past it the config says the first ones in order and the others' regions fail LS's
validation."""


class TaskAggregate(Protocol):
    """What the export reads of an aggregate: its answer, and a confidence in [0, 1] under
    `confidence` (methods with a posterior) or `agreement` (majority)."""

    answer: Any


class PerTaskAggregator(Protocol):
    def aggregate(self, answers: Sequence[WorkerAnswer]) -> TaskAggregate: ...


@dataclass(frozen=True, slots=True)
class LabelStudioExport:
    chunks: AsyncIterator[bytes]
    media_type: str
    filename: str


async def project_layout(db: Db, project: ProjectRow) -> Layout:
    """The project's LS layout: its first task's input picks the object tag (and its key),
    a label-free bounding_box project lists the labels its answers use."""
    sample = await repository.first_input(db, project_id=project.id)
    box_labels: list[str] = []
    if project.task_type == "bounding_box" and not project.labels:
        box_labels = await repository.box_labels(db, project_id=project.id, limit=MAX_BOX_LABELS)
    return layout_for(
        task_type=project.task_type,
        labels=project.labels,
        multi_label=project.multi_label,
        answer_schema=project.answer_schema,
        sample_input=sample,
        box_labels=box_labels,
    )


async def labeling_config(db: Db, *, requester_id: str, project_id: str) -> LabelStudioConfig:
    project = await load_project(db, requester_id=requester_id, project_id=project_id)
    layout = await project_layout(db, project)
    return LabelStudioConfig(
        title=project.title,
        label_config=config_xml(layout, title=project.title),
        data_key=layout.data_key,
    )


@dataclass(frozen=True, slots=True)
class AggregateSource:
    """Where the export's predictions come from: an in-process per-task aggregator (the
    default export's majority), or a finished aggregation run's stored aggregates (the
    crowd-kit methods of `?aggregation=`, services/tasks/results/jobs.py)."""

    method: str
    aggregator: PerTaskAggregator | None = None
    run_id: str | None = None


def _score(aggregate: TaskAggregate) -> float | None:
    for name in ("confidence", "agreement"):
        value = getattr(aggregate, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _rounded(agreement: float | None) -> float | None:
    return None if agreement is None else round(agreement, 2)


def _aggregate(
    row: LabelStudioRow, answers: list[dict[str, Any]], source: AggregateSource
) -> tuple[Any, float | None]:
    """The task's aggregate answer (None without one) and its score: the method's confidence
    (its posterior) where it has one, else the agreement."""
    if source.run_id is not None:
        if row.aggregate_answer is None:
            return None, None
        # as the results export shows them: the agreement to 2 decimals
        score = row.confidence if row.confidence is not None else _rounded(row.agreement)
        return orjson.loads(row.aggregate_answer), score
    assert source.aggregator is not None
    aggregate = source.aggregator.aggregate(
        [
            WorkerAnswer(a["assignment_id"], a["worker_id"], a["answer"], a["status"])
            for a in answers
        ]
    )
    return aggregate.answer, _score(aggregate)


def _annotation(layout: Layout, answer: dict[str, Any], size: tuple[int, int] | None) -> dict:
    submitted = answer.get("submitted_at")
    return {
        "result": result_of(layout, answer.get("answer"), size=size),
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": submitted,
        "updated_at": answer.get("reviewed_at") or submitted,
        "lead_time": answer.get("lead_time"),
        "assignment_id": answer["assignment_id"],
        "worker_id": answer["worker_id"],
        "status": answer["status"],
    }


def task_record(row: LabelStudioRow, layout: Layout, source: AggregateSource) -> bytes:
    """One LS task (JSON) of the export."""
    size = image_size(orjson.loads(row.input)) if layout.task_type == "bounding_box" else None
    answers = orjson.loads(row.answers)
    annotations = []
    if row.gold_answer is not None:
        gold = orjson.loads(row.gold_answer)
        annotations.append(
            {
                "result": result_of(layout, gold, size=size),
                "was_cancelled": False,
                "ground_truth": True,
                # uploaded with the task (LS tools sort a task's annotations by this)
                "created_at": row.created_at,
                "updated_at": row.created_at,
            }
        )
    annotations.extend(_annotation(layout, a, size) for a in answers)
    answer, score = _aggregate(row, answers, source)
    predictions = []
    if answer is not None:
        predictions.append(
            {
                "model_version": source.method,
                "score": score,
                "result": result_of(layout, answer, size=size),
            }
        )
    return orjson.dumps(
        {
            "data": orjson.Fragment(row.input),
            "meta": {"task_id": row.id, "external_id": row.external_id},
            "annotations": annotations,
            "predictions": predictions,
        }
    )


async def export(
    db: Db,
    *,
    database: Database,
    project: ProjectRow,
    source: AggregateSource,
    batch_rows: int,
) -> LabelStudioExport:
    """Check the project has an LS form (422 before any byte goes out), then stream."""
    layout = await project_layout(db, project)
    return _export(database, project, layout, source, batch_rows)


def export_run(
    *, database: Database, project: ProjectRow, run_id: str, method: str, batch_rows: int
) -> LabelStudioExport:
    """The export with a finished run's aggregates. The layout is read in the stream's
    snapshot: only free_form projects can lack an LS form, and no method aggregates them (the
    run was refused with a 422 before)."""
    source = AggregateSource(method=method, run_id=run_id)
    return _export(database, project, None, source, batch_rows)


def _export(
    database: Database,
    project: ProjectRow,
    layout: Layout | None,
    source: AggregateSource,
    batch_rows: int,
) -> LabelStudioExport:
    suffix = "" if source.run_id is None else f"-{source.method}"
    return LabelStudioExport(
        chunks=_stream(database, project, layout, source, batch_rows),
        media_type="application/json",
        filename=f"label-studio-{project.id}{suffix}.json",
    )


async def _stream(
    database: Database,
    project: ProjectRow,
    layout: Layout | None,
    source: AggregateSource,
    batch_rows: int,
) -> AsyncIterator[bytes]:
    async with database.snapshot() as db:  # one consistent, read-only snapshot
        if layout is None:
            layout = await project_layout(db, project)
        rows = repository.label_studio_rows(
            db, project_id=project.id, run_id=source.run_id, prefetch=batch_rows
        )
        async for chunk in _json_array(rows, layout, source, batch_rows):
            yield chunk


async def _json_array(
    rows: AsyncIterator[LabelStudioRow],
    layout: Layout,
    source: AggregateSource,
    batch_rows: int,
) -> AsyncIterator[bytes]:
    buffer: list[bytes] = [b"["]
    first = True
    flush_rows = min(batch_rows, FLUSH_ROWS)
    async for row in rows:
        record = task_record(row, layout, source)
        buffer.append(record if first else b"," + record)
        first = False
        if len(buffer) >= flush_rows:
            yield b"".join(buffer)
            buffer.clear()
    buffer.append(b"]")
    yield b"".join(buffer)


# --- import ----------------------------------------------------------------------------------


def upload_parser(
    gold: GoldSource,
) -> Callable[[ProjectRow, str | None, bytes, int], ParsedUpload]:
    """The task upload's parser for an LS task export (services/tasks/tasks/service.py calls it
    with the project, locked, once the upload may proceed)."""

    def parse(
        project: ProjectRow, content_type: str | None, body: bytes, max_tasks: int
    ) -> ParsedUpload:
        return parse_label_studio_tasks(
            project, content_type=content_type, body=body, max_tasks=max_tasks, gold=gold
        )

    return parse


def require_json(content_type: str | None) -> None:
    """415 unless the body is UTF-8 JSON (an LS task export is a JSON file)."""
    media_type, charset = _media_type(content_type)
    if media_type not in JSON_TYPES or charset not in (None, "utf-8", "utf8"):
        raise UnsupportedMediaType("A Label Studio task export is uploaded as application/json.")


def _problem(problems: list[dict[str, Any]], index: int, msg: str) -> None:
    problems.append({"loc": ["body", index], "msg": msg})


def parse_label_studio_tasks(
    project: ProjectRow,
    *,
    content_type: str | None,
    body: bytes,
    max_tasks: int,
    gold: GoldSource,
) -> ParsedUpload:
    """An LS task export (a JSON list of tasks) as a task upload.

    Each item's `data` is the task input, as is (our projects' inputs are free JSON: there is
    no input schema to map it to); `meta.external_id` is the external id (our export writes it
    there). With `gold` other than "none" the chosen annotation
    (`chosen_annotation`) becomes the gold answer, converted by the project's layout. Every
    other LS field (ids, predictions, drafts, timestamps) is ignored. Problems name the item:
    `loc: ["body", index]`, `msg` the field inside it.
    """
    require_json(content_type)
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON("The request body is not valid JSON.") from exc
    if not isinstance(items, list):
        raise ValidationFailed(
            "A Label Studio task export is a JSON list of tasks.",
            errors=[{"loc": ["body"], "msg": "must be a list of tasks"}],
        )
    if not items:
        raise ValidationFailed(
            "The upload holds no tasks.", errors=[{"loc": ["body"], "msg": "no tasks"}]
        )
    if len(items) > max_tasks:
        raise ValidationFailed(
            f"An upload holds at most {max_tasks} tasks; split it into several calls.",
            code="too_many_tasks",
            errors=[{"loc": ["body"], "msg": f"at most {max_tasks} tasks per upload"}],
        )
    layout = (
        layout_for(
            task_type=project.task_type,
            labels=project.labels,
            multi_label=project.multi_label,
            answer_schema=project.answer_schema,
            sample_input=None,
        )
        if gold != "none"
        else None
    )
    tasks: list[UploadedTask] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        task = _task(item, index, layout, gold, problems)
        if task is not None:
            tasks.append(task)
        if len(problems) >= MAX_PROBLEMS:
            break
    return ParsedUpload(tasks, problems)


def _task(
    item: Any,
    index: int,
    layout: Layout | None,
    gold: GoldSource,
    problems: list[dict[str, Any]],
) -> UploadedTask | None:
    before = len(problems)
    if not isinstance(item, dict):
        _problem(problems, index, "a task must be a JSON object with data")
        return None
    data = item.get("data")
    if not isinstance(data, dict):
        _problem(problems, index, "data: must be a JSON object")
    external_id = None
    meta = item.get("meta")
    if isinstance(meta, dict) and meta.get("external_id") is not None:
        external_id = meta["external_id"]
        if not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_EXTERNAL_ID:
            _problem(
                problems,
                index,
                f"meta.external_id: must be a string of 1-{MAX_EXTERNAL_ID} characters",
            )
    gold_answer = None
    if layout is not None:
        gold_answer = _gold_answer(item, index, layout, gold, problems)
    if len(problems) > before:
        return None
    return UploadedTask(
        input=data,
        gold_answer=gold_answer,
        external_id=external_id,
        max_assignments=None,
        loc=["body", index],
    )


def _gold_answer(
    item: dict[str, Any],
    index: int,
    layout: Layout,
    gold: GoldSource,
    problems: list[dict[str, Any]],
) -> Any:
    field = "annotations" if "annotations" in item else "completions"  # LS before 1.0
    annotations = item.get(field)
    if annotations is None:
        return None
    if not isinstance(annotations, list):
        _problem(problems, index, f"{field}: must be a list")
        return None
    chosen = chosen_annotation(annotations, gold)
    if chosen is None:
        return None
    position, annotation = chosen
    try:
        return answer_of(layout, annotation.get("result"))
    except RegionProblem as exc:
        _problem(problems, index, f"{field}[{position}]: {exc}")
        return None
