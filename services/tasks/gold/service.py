"""Gold tasks: is a worker's answer the known one, and how each worker is doing per project.

A task with a `gold_answer` is served like any other; at submit the answer is compared with it
and the worker's per-project tally (`gold_stats`) moves in the same transaction. A project with
`min_gold_accuracy` stops offering work to a worker below it once the worker has answered at
least `MIN_GOLD_ANSWERS` gold tasks (accept refuses; discovery hides the project).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from services.tasks.gold import repository
from services.tasks.gold.repository import WorkerTally
from services.tasks.gold.schemas import ProjectWorkerStats
from services.tasks.results import repository as results_repository
from shared.database import Db, Writable
from shared.errors import NotFound
from shared.pagination import Page, PageParams

MIN_GOLD_ANSWERS = 3
# Bounding boxes count as the same box when they overlap this much (intersection over union),
# the usual threshold of object-detection benchmarks: exact fractions are not reproducible by
# hand.
BOX_MIN_IOU = 0.5
_SPACES = re.compile(r"\s+")


class ProjectNotFound(NotFound):
    code = "not_found"


def gold_accuracy_failed(
    *, min_gold_accuracy: int | None, answered: int | None, correct: int | None
) -> bool:
    """True when the worker's gold accuracy is judged and below the project's minimum."""
    if min_gold_accuracy is None or answered is None or answered < MIN_GOLD_ANSWERS:
        return False
    return (correct or 0) * 100 < min_gold_accuracy * answered


def is_gold_correct(*, task_type: str, answer: Any, gold_answer: Any) -> bool:
    """Does a (schema-valid) answer match the gold answer, as a human reviewer would judge it?

    Labels compare exactly (multi-label as sets), transcriptions ignoring case and runs of
    whitespace, bounding boxes one to one by label and overlap; free-form answers must equal the
    gold answer as JSON values.
    """
    if not isinstance(answer, Mapping) or not isinstance(gold_answer, Mapping):
        return answer == gold_answer
    if task_type in ("classification", "sentiment"):
        if "labels" in gold_answer:
            return _as_set(answer.get("labels")) == _as_set(gold_answer.get("labels"))
        return answer.get("label") == gold_answer.get("label")
    if task_type == "transcription":
        return _normalized_text(answer.get("text")) == _normalized_text(gold_answer.get("text"))
    if task_type == "bounding_box":
        return _boxes_match(answer.get("boxes"), gold_answer.get("boxes"))
    return answer == gold_answer


def _as_set(values: Any) -> frozenset[Any] | None:
    return frozenset(values) if isinstance(values, list) else None


def _normalized_text(text: Any) -> str | None:
    return _SPACES.sub(" ", text).strip().casefold() if isinstance(text, str) else None


def _boxes_match(answer_boxes: Any, gold_boxes: Any) -> bool:
    if not isinstance(answer_boxes, list) or not isinstance(gold_boxes, list):
        return False
    if len(answer_boxes) != len(gold_boxes):
        return False
    unmatched = list(answer_boxes)
    for gold in gold_boxes:
        best = max(
            (b for b in unmatched if b.get("label") == gold.get("label")),
            key=lambda b: _iou(b, gold),
            default=None,
        )
        if best is None or _iou(best, gold) < BOX_MIN_IOU:
            return False
        unmatched.remove(best)
    return True


def _iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    ax2, ay2 = a["x"] + a["width"], a["y"] + a["height"]
    bx2, by2 = b["x"] + b["width"], b["y"] + b["height"]
    inter_w = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    inter_h = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = inter_w * inter_h
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else float(a == b)


def grade(*, task_type: str, answer: Any, gold_answer: Any | None) -> bool | None:
    """Is a submitted answer right? None for a task that is not gold. The submit statement
    books the result in the worker's tally (gold_stats) with the submission itself."""
    if gold_answer is None:
        return None
    return is_gold_correct(task_type=task_type, answer=answer, gold_answer=gold_answer)


async def record_decisions(db: Writable, decisions: Sequence[tuple[str, str, int, int]]) -> None:
    """Apply (project_id, worker_id, approved delta, rejected delta) review outcomes."""
    await repository.record_decisions(db, decisions)


async def list_project_workers(
    db: Db,
    *,
    stats_db: Db,
    requester_id: str,
    project_id: str,
    page: PageParams,
    aggregation: str | None = None,
) -> Page[ProjectWorkerStats]:
    """The owner check on `db` (the primary: a project created a moment ago is found), the
    tallies on `stats_db` (may be the read replica, a few seconds behind)."""
    project = await repository.get_owned_project(
        db, project_id=project_id, requester_id=requester_id
    )
    if project is None:
        raise ProjectNotFound("Project not found.")
    rows = await repository.list_project_workers(
        stats_db, project_id=project_id, before_worker_id=page.before, limit=page.fetch
    )
    kept, next_cursor = page.page(rows, lambda r: [r.worker_id])
    minimum = project.min_gold_accuracy
    skills = await results_repository.worker_skills(
        db, project_id=project_id, method=aggregation, worker_ids=[r.worker_id for r in kept]
    )
    items = []
    for row in kept:
        item = _worker_stats(row, minimum)
        if (skill := skills.get(row.worker_id)) is not None:
            item.skill = skill.skill
            item.skill_method = skill.method
            item.skill_computed_at = skill.finished_at
        items.append(item)
    return Page(items=items, next_cursor=next_cursor)


def _worker_stats(row: WorkerTally, min_gold_accuracy: int | None) -> ProjectWorkerStats:
    answered, correct = row.answered, row.correct
    return ProjectWorkerStats(
        worker_id=row.worker_id,
        gold_answered=answered,
        gold_correct=correct,
        gold_accuracy=round(100 * correct / answered, 2) if answered else None,
        below_min_gold_accuracy=gold_accuracy_failed(
            min_gold_accuracy=min_gold_accuracy, answered=answered, correct=correct
        ),
        submitted=row.submitted,
        approved=row.approved,
        rejected=row.rejected,
        pending_review=max(row.submitted - row.approved - row.rejected, 0),
        updated_at=row.updated_at,
    )
