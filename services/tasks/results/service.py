"""The results export: one record per task, streamed as JSON, JSON Lines or CSV.

The owner check happens on the request's connection (the primary: 404 before any byte goes
out); the rows are then read by the response itself on a connection of its own
(`Database.snapshot(stale_ok=True)`: the read replica when it is usable, else the primary), in
one read-only repeatable-read transaction (a consistent snapshot even while workers keep
submitting), through a server-side cursor, `batch_rows` at a time. Memory stays flat whatever
the project's size. A replica that fails before the first row has been read is left for the
primary, so the client sees nothing of it; one that fails later cuts the export short, as the
primary failing mid-export would.

CSV injection (OWASP "CSV Injection"): requesters (external ids, inputs) and workers (answers)
control cell text, and a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a
tab or carriage return before one) as a formula. Every CSV cell that starts with one of
`CSV_FORMULA_TRIGGERS` is written with a single quote `'` in front (`neutralize_cell`), and the
csv module quotes any cell holding a separator, quote or line break, so no cell can start a
new one. JSON and JSON Lines exports are never altered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from services.tasks.interop import service as label_studio
from services.tasks.projects.repository import ProjectRow
from services.tasks.projects.service import load_project
from services.tasks.results import repository
from services.tasks.results.aggregate import Aggregator, WorkerAnswer, aggregator_for
from services.tasks.results.jobs import AggregationJobs, ProjectForRun, current_run
from services.tasks.results.methods import AGGREGATION_METHODS, methods_for
from services.tasks.results.repository import AggregatedResultRow, ResultRow, RunRow
from shared.database import Database, Db, ReplicaUnavailable
from shared.errors import NotFound, ValidationFailed

ResultsFormat = Literal["json", "jsonl", "csv", "label_studio"]
CSV_COLUMNS = ("task_id", "external_id", "input", "aggregate_answer", "agreement", "answers")
# OWASP's list: the characters a spreadsheet treats as the start of a formula, plus tab and
# carriage return (which some strip before looking).
CSV_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class ResultsExport:
    chunks: AsyncIterator[bytes]
    media_type: str
    filename: str


async def export_results(
    db: Db,
    *,
    database: Database,
    requester_id: str,
    project_id: str,
    fmt: ResultsFormat,
    batch_rows: int,
) -> ResultsExport:
    project = await load_project(db, requester_id=requester_id, project_id=project_id)
    aggregator = aggregator_for(
        task_type=project.task_type, labels=project.labels, multi_label=project.multi_label
    )
    if fmt == "label_studio":
        source = label_studio.AggregateSource(method="majority", aggregator=aggregator)
        ls_export = await label_studio.export(
            db, database=database, project=project, source=source, batch_rows=batch_rows
        )
        return ResultsExport(ls_export.chunks, ls_export.media_type, ls_export.filename)
    return ResultsExport(
        chunks=_stream(database, project.id, aggregator, fmt, batch_rows),
        media_type=MEDIA_TYPES[fmt],
        filename=f"results-{project.id}.{fmt}",
    )


def _record(row: ResultRow, aggregator: Aggregator) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    answers = orjson.loads(row.answers)
    aggregate = aggregator.aggregate(
        [
            WorkerAnswer(a["assignment_id"], a["worker_id"], a["answer"], a["status"])
            for a in answers
        ]
    )
    return answers, aggregate.to_dict()


async def _stream(
    database: Database,
    project_id: str,
    aggregator: Aggregator,
    fmt: ResultsFormat,
    batch_rows: int,
) -> AsyncIterator[bytes]:
    encode = {"json": _json_chunks, "jsonl": _jsonl_chunks, "csv": _csv_chunks}[fmt]
    for stale_ok in (True, False):
        first_row_read = False
        try:
            # One consistent snapshot, read-only (BEGIN ISOLATION LEVEL REPEATABLE READ READ
            # ONLY). Leaving the block ends it (committed when done, rolled back when the client
            # went away) and returns the connection to the pool (asyncpg shields the release
            # from the response task's cancellation; the pool's reset rolls back a transaction
            # still open).
            async with database.snapshot(stale_ok=stale_ok) as db:
                rows = aiter(
                    repository.task_results(db, project_id=project_id, prefetch=batch_rows)
                )
                first = await anext(rows, None)  # before any byte: a failing replica costs nothing
                first_row_read = True
                async for chunk in encode(_prepend(first, rows), aggregator, batch_rows):
                    yield chunk
            return
        except ReplicaUnavailable:
            if first_row_read:
                raise
            # The replica failed before the first row: read everything on the primary.


async def _prepend(
    first: ResultRow | None, rest: AsyncIterator[ResultRow]
) -> AsyncIterator[ResultRow]:
    if first is None:
        return
    yield first
    async for row in rest:
        yield row


def _json_record(row: ResultRow, aggregator: Aggregator) -> bytes:
    answers, aggregate = _record(row, aggregator)
    return orjson.dumps(
        {
            "task_id": row.id,
            "external_id": row.external_id,
            "input": orjson.Fragment(row.input),
            "answers": answers,
            "aggregate": aggregate,
        }
    )


async def _json_chunks(
    rows: AsyncIterator[ResultRow], aggregator: Aggregator, batch_rows: int
) -> AsyncIterator[bytes]:
    buffer: list[bytes] = []
    first = True
    yield b"["
    async for row in rows:
        buffer.append(
            _json_record(row, aggregator) if first else b"," + _json_record(row, aggregator)
        )
        first = False
        if len(buffer) >= batch_rows:
            yield b"".join(buffer)
            buffer.clear()
    buffer.append(b"]")
    yield b"".join(buffer)


async def _jsonl_chunks(
    rows: AsyncIterator[ResultRow], aggregator: Aggregator, batch_rows: int
) -> AsyncIterator[bytes]:
    buffer: list[bytes] = []
    async for row in rows:
        buffer.append(_json_record(row, aggregator) + b"\n")
        if len(buffer) >= batch_rows:
            yield b"".join(buffer)
            buffer.clear()
    if buffer:
        yield b"".join(buffer)


def neutralize_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: `'` in front of a formula trigger."""
    return "'" + value if value.startswith(CSV_FORMULA_TRIGGERS) else value


async def _csv_chunks(
    rows: AsyncIterator[ResultRow], aggregator: Aggregator, batch_rows: int
) -> AsyncIterator[bytes]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    pending = 0
    async for row in rows:
        answers, aggregate = _record(row, aggregator)
        cells = (
            row.id,
            row.external_id or "",
            row.input,
            "" if aggregate["answer"] is None else orjson.dumps(aggregate["answer"]).decode(),
            "" if aggregate["agreement"] is None else f"{aggregate['agreement']:.2f}",
            orjson.dumps(answers).decode(),
        )
        writer.writerow([neutralize_cell(cell) for cell in cells])
        pending += 1
        if pending >= batch_rows:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
            pending = 0
    yield text.getvalue().encode()


# --- results aggregated by a crowd-kit method (`?aggregation=`) -----------------------------


class AggregationNotSupported(ValidationFailed):
    code = "aggregation_not_supported"


def check_method(*, task_type: str, method: str) -> None:
    """422 naming the methods that fit the project's task type (none for free_form)."""
    allowed = methods_for(task_type)
    if method in allowed:
        return
    fits = ", ".join(allowed) if allowed else "none (free_form answers are not aggregated)"
    known = method in AGGREGATION_METHODS
    msg = (
        f"{method!r} does not fit {task_type} projects; allowed: {fits}"
        if known
        else f"unknown aggregation method {method!r}; allowed for {task_type} projects: {fits}"
    )
    raise AggregationNotSupported(msg, errors=[{"loc": ["query", "aggregation"], "msg": msg}])


def project_for_run(project: ProjectRow) -> ProjectForRun:
    return ProjectForRun(
        id=project.id,
        task_type=project.task_type,
        labels=tuple(project.labels) if project.labels else None,
        multi_label=project.multi_label,
    )


async def aggregation_run(
    db: Db,
    *,
    database: Database,
    jobs: AggregationJobs,
    requester_id: str,
    project_id: str,
    method: str,
    wait_seconds: float,
) -> tuple[ProjectRow, RunRow]:
    """The owner's project (404) and the run of `method` for its current answers (422 when the
    method does not fit), started if needed and waited for up to `wait_seconds`."""
    project = await load_project(db, requester_id=requester_id, project_id=project_id)
    check_method(task_type=project.task_type, method=method)
    run = await current_run(
        database,
        jobs=jobs,
        project=project_for_run(project),
        method=method,
        wait_seconds=wait_seconds,
    )
    return project, run


async def get_run(db: Db, *, requester_id: str, project_id: str, run_id: str) -> RunRow:
    await load_project(db, requester_id=requester_id, project_id=project_id)
    run = await repository.get_run(db, project_id=project_id, run_id=run_id)
    if run is None:
        raise RunNotFound("Aggregation run not found.")
    return run


class RunNotFound(NotFound):
    code = "not_found"


def aggregated_export(
    *, database: Database, project: ProjectRow, run: RunRow, fmt: ResultsFormat, batch_rows: int
) -> ResultsExport:
    """The export of a finished run: the default export's records with the run's aggregate
    (`answer`, `agreement`, `confidence`, `method`) and each answer's `worker_skill`."""
    if fmt == "label_studio":
        ls_export = label_studio.export_run(
            database=database,
            project=project,
            run_id=run.id,
            method=run.method,
            batch_rows=batch_rows,
        )
        return ResultsExport(ls_export.chunks, ls_export.media_type, ls_export.filename)
    return ResultsExport(
        chunks=_stream_with_run(database, project.id, run, fmt, batch_rows),
        media_type=MEDIA_TYPES[fmt],
        filename=f"results-{project.id}-{run.method}.{fmt}",
    )


AGGREGATED_CSV_COLUMNS = (
    "task_id",
    "external_id",
    "input",
    "aggregate_answer",
    "agreement",
    "confidence",
    "answers",
)


def _aggregate_of(row: AggregatedResultRow, method: str) -> dict[str, Any]:
    return {
        "answer": None if row.aggregate_answer is None else orjson.loads(row.aggregate_answer),
        "agreement": None if row.agreement is None else round(row.agreement, 2),
        "confidence": row.confidence,
        "method": method,
    }


def _aggregated_json_record(row: AggregatedResultRow, method: str) -> bytes:
    return orjson.dumps(
        {
            "task_id": row.id,
            "external_id": row.external_id,
            "input": orjson.Fragment(row.input),
            "answers": orjson.Fragment(row.answers),
            "aggregate": _aggregate_of(row, method),
        }
    )


async def _stream_with_run(
    database: Database, project_id: str, run: RunRow, fmt: ResultsFormat, batch_rows: int
) -> AsyncIterator[bytes]:
    async with database.snapshot() as db:  # one consistent, read-only snapshot
        rows = repository.task_results_with_run(
            db, project_id=project_id, run_id=run.id, prefetch=batch_rows
        )
        if fmt == "csv":
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(AGGREGATED_CSV_COLUMNS)
            pending = 0
            async for row in rows:
                aggregate = _aggregate_of(row, run.method)
                cells = (
                    row.id,
                    row.external_id or "",
                    row.input,
                    row.aggregate_answer or "",
                    "" if aggregate["agreement"] is None else f"{aggregate['agreement']:.2f}",
                    "" if row.confidence is None else repr(row.confidence),
                    row.answers,
                )
                writer.writerow([neutralize_cell(cell) for cell in cells])
                pending += 1
                if pending >= batch_rows:
                    yield text.getvalue().encode()
                    text.seek(0)
                    text.truncate()
                    pending = 0
            yield text.getvalue().encode()
            return
        buffer: list[bytes] = [b"["] if fmt == "json" else []
        first = True
        async for row in rows:
            record = _aggregated_json_record(row, run.method)
            if fmt == "json":
                buffer.append(record if first else b"," + record)
            else:
                buffer.append(record + b"\n")
            first = False
            if len(buffer) >= batch_rows:
                yield b"".join(buffer)
                buffer.clear()
        if fmt == "json":
            buffer.append(b"]")
        if buffer:
            yield b"".join(buffer)


@dataclass(frozen=True, slots=True)
class RunAggregate:
    """One task's aggregate from a finished run (what the Label Studio export's prediction
    reads: `answer`, and `confidence`, else `agreement`, as its score)."""

    answer: Any
    confidence: float | None
    agreement: float
    method: str


async def run_aggregates(db: Db, *, run: RunRow) -> dict[str, RunAggregate]:
    """Task id -> aggregate of a finished run (`aggregation_run(...)` returned it with status
    `done`); tasks without votes are absent. Stable for other exports to build on."""
    if run.status != "done":
        raise ValueError(f"run {run.id} is {run.status}, not done")
    rows = await repository.task_aggregates(db, run_id=run.id)
    return {
        task_id: RunAggregate(
            answer=answer, confidence=confidence, agreement=agreement, method=run.method
        )
        for task_id, (answer, confidence, agreement) in rows.items()
    }
