"""crowd-kit's aggregation methods applied to a project's answers (runs in the worker process).

This is the only module that imports crowd-kit and pandas. The service process never imports it
(about 150 MB of resident memory and a second of import time, docs/architecture.md): the jobs
module hands `run_job` to a process pool. The methods are crowd-kit's own classes, called with
their documented inputs; this module only shapes the project's answers into crowd-kit's frames
and reads the fitted attributes back.

Frames. Tasks and workers are dictionary-encoded to integers in sorted id order, so every order
crowd-kit derives (group keys, unstacked columns) is the order of the ids themselves, and rows
keep the export's order (tasks by id, each task's answers by assignment id), which is what
MACE's order-of-appearance factorisation sees. Label classes are integers in the labels' text
order (what crowd-kit would see with string labels; MACE's fit depends on it). Among equally
probable classes the aggregate takes the earliest in the project's label order (sentiment:
positive, negative, neutral), the rule of the default majority export. A multi-label
answer is one class per distinct label *set* (as the default majority counts them).

Per task: `answer` (the task type's answer shape), `confidence` (the method's posterior
probability of that answer; None where crowd-kit's method has none: ROVER, SegmentationEM),
and `agreement` (the share of the task's answers that a reviewer would judge equal to the
aggregate: the gold-grading rule of services/tasks/gold/service.py).

Per worker: `skill`, the method's own estimate where it has one: majority and Wawa, the
worker's accuracy against the aggregate (crowd-kit's `skills_`); Dawid-Skene, the probability
of a right answer, sum over classes of prior(c) * P(answer c | truth c); GLAD, the ability
alpha (log-odds scale, 0 = guessing); MACE, the posterior probability of not spamming; ROVER
and SegmentationEM have no per-worker estimate, so skill is the share of the worker's answers
that match the aggregate.

Gold. Dawid-Skene takes the gold tasks' answers as crowd-kit's `true_labels` (their posterior is
pinned to the known label, which sharpens every worker's confusion matrix). GLAD takes each
worker's gold record as the prior mean of their ability (`alphas_priors_mean`: the log-odds of
the Laplace-smoothed gold accuracy, crowd-kit's default 1.0 without gold answers). crowd-kit's
Wawa, MACE, ROVER, SegmentationEM and MajorityVote take no gold input.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from services.tasks.answers import SENTIMENT_LABELS
from services.tasks.gold.service import is_gold_correct
from services.tasks.results.methods import (
    DEFAULT_BOX_GRID,
    AggregationResult,
    JobSpec,
    ProjectShape,
)
from services.tasks.results.progress import JobProgress, crowdkit_progress

# Tasks per SegmentationEM batch: bounds the masks held at once (tasks x answers x grid^2 bytes).
BOX_TASKS_PER_BATCH = 2_000


def run_job(spec: JobSpec) -> AggregationResult:
    """The process pool's entry point: read the answers, aggregate, report time and memory."""
    started = time.perf_counter()
    progress = JobProgress(spec.progress_path)
    frame = read_answers_csv(spec.answers_path)
    with crowdkit_progress(progress):
        result = aggregate(
            spec.method,
            spec.shape,
            frame,
            gold=spec.gold,
            gold_stats=spec.gold_stats,
            box_grid=spec.box_grid,
            progress=progress,
        )
    progress.report(1.0, force=True)
    result.seconds = time.perf_counter() - started
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def read_answers_csv(path: str) -> pd.DataFrame:
    """Postgres' `COPY ... (FORMAT csv)` output: every field text, no header."""
    return pd.read_csv(
        path,
        header=None,
        names=["task", "worker", "answer"],
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        engine="c",
    )


def aggregate(
    method: str,
    shape: ProjectShape,
    answers: pd.DataFrame,
    *,
    gold: Mapping[str, Any] | None = None,
    gold_stats: Mapping[str, tuple[int, int]] | None = None,
    box_grid: int = DEFAULT_BOX_GRID,
    progress: JobProgress | None = None,
) -> AggregationResult:
    """Aggregate `answers` (columns task, worker, answer: the answer as the loader gives it,
    see `repository.ANSWER_EXPRESSIONS`) with crowd-kit's `method`. With `progress` (inside
    `crowdkit_progress`), crowd-kit's progress bars are switched on and counted into it."""
    gold = gold or {}
    gold_stats = gold_stats or {}
    if answers.empty:
        return AggregationResult()
    if shape.task_type in ("classification", "sentiment"):
        return _aggregate_labels(method, shape, answers, gold, gold_stats, progress)
    if shape.task_type == "transcription" and method == "rover":
        return _aggregate_texts(answers, progress)
    if shape.task_type == "bounding_box" and method == "segmentation_em":
        return _aggregate_boxes(answers, box_grid, progress)
    raise ValueError(f"{method} does not fit {shape.task_type}")


# --- labels -------------------------------------------------------------------------------


def _label_order(shape: ProjectShape) -> tuple[str, ...]:
    if shape.task_type == "sentiment":
        return SENTIMENT_LABELS
    return tuple(shape.labels or ())


@dataclass(frozen=True, slots=True)
class _LabelCodec:
    """Answer text <-> class code. Codes follow the classes' text order (the order crowd-kit
    would see with the labels as strings: MACE's result depends on it); `tie_rank` is each
    code's place in the project's label order, which breaks ties."""

    classes: list[Any]  # code -> the answer object ({"label": x} or {"labels": [...]})
    codes: np.ndarray  # one code per answer row
    tie_rank: np.ndarray  # code -> rank in the project's label order
    class_of_key: dict[Any, int]

    def code_of(self, answer: Any) -> int | None:
        return self.class_of_key.get(_answer_key(answer))


def _answer_key(answer: Any) -> Any:
    if isinstance(answer, Mapping):
        if "labels" in answer and isinstance(answer["labels"], list):
            return frozenset(answer["labels"])
        return answer.get("label")
    return None


def _encode_labels(shape: ProjectShape, raw: pd.Series) -> _LabelCodec:
    order = _label_order(shape)
    rank = {label: i for i, label in enumerate(order)}

    def label_key(label: str) -> tuple[int, str]:
        return (rank.get(label, len(rank)), label)

    uniques, inverse = np.unique(raw.to_numpy(dtype=object), return_inverse=True)
    if shape.multi_label:
        parsed = [tuple(sorted(set(orjson.loads(text)), key=label_key)) for text in uniques]
        distinct = sorted(set(parsed), key=lambda labels: orjson.dumps(list(labels)))
        code_of_set = {labels: i for i, labels in enumerate(distinct)}
        unique_codes = np.array([code_of_set[labels] for labels in parsed], dtype=np.int64)
        classes: list[Any] = [{"labels": list(labels)} for labels in distinct]
        class_of_key: dict[Any, int] = {frozenset(s): i for s, i in code_of_set.items()}
        by_tie = sorted(distinct, key=lambda labels: [label_key(x) for x in labels])
        tie_rank = np.array([by_tie.index(labels) for labels in distinct], dtype=np.int64)
    else:
        distinct_labels = sorted({str(x) for x in uniques})
        code_of_label = {label: i for i, label in enumerate(distinct_labels)}
        unique_codes = np.array([code_of_label[str(x)] for x in uniques], dtype=np.int64)
        classes = [{"label": label} for label in distinct_labels]
        class_of_key = dict(code_of_label)
        by_tie = sorted(distinct_labels, key=label_key)
        tie_rank = np.array([by_tie.index(label) for label in distinct_labels], dtype=np.int64)
    return _LabelCodec(
        classes=classes,
        codes=unique_codes[inverse],
        tie_rank=tie_rank,
        class_of_key=class_of_key,
    )


def _factorize_sorted(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _aggregate_labels(
    method: str,
    shape: ProjectShape,
    answers: pd.DataFrame,
    gold: Mapping[str, Any],
    gold_stats: Mapping[str, tuple[int, int]],
    progress: JobProgress | None = None,
) -> AggregationResult:
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, Wawa

    report = progress is not None  # crowd-kit's progress bars on (GLAD, MACE): see progress.py

    task_codes, task_ids = _factorize_sorted(answers["task"])
    worker_codes, worker_ids = _factorize_sorted(answers["worker"])
    codec = _encode_labels(shape, answers["answer"])
    data = pd.DataFrame({"task": task_codes, "worker": worker_codes, "label": codec.codes})

    skills: pd.Series
    if method == "majority":
        model = MajorityVote().fit(data)
        probas, skills = model.probas_, model.skills_
    elif method == "wawa":
        model = Wawa().fit(data)
        probas, skills = model.predict_proba(data), model.skills_
    elif method == "dawid_skene":
        true_labels = _gold_labels(codec, task_ids, gold)
        model = DawidSkene(n_iter=100).fit(data, true_labels=true_labels)
        probas = model.probas_
        skills = _dawid_skene_skills(model.errors_, model.priors_)
    elif method == "glad":
        priors = _glad_alpha_priors(worker_ids, gold_stats)
        model = GLAD(alphas_priors_mean=priors, silent=not report).fit(data)
        probas, skills = model.probas_, model.alphas_
    elif method == "mace":
        model = MACE(random_state=0, verbose=2 if report else 0).fit(data)
        probas = model.probas_
        # MACE numbers workers by first appearance; column 1 of spamming_ is "knows the answer".
        first_seen = pd.unique(data["worker"])
        skills = pd.Series(model.spamming_[:, 1], index=first_seen)
    else:
        raise ValueError(f"{method} does not fit {shape.task_type}")

    # The most probable class; among equally probable ones, the earliest in the project's
    # label order (crowd-kit would take the first column, an order of appearance).
    probas = probas.sort_index()
    values = probas.to_numpy(dtype=float)
    column_codes = probas.columns.to_numpy().astype(np.int64)
    tie_ranks = codec.tie_rank[column_codes].astype(float)
    is_best = values == values.max(axis=1, keepdims=True)
    chosen = np.where(is_best, tie_ranks[None, :], np.inf).argmin(axis=1)
    chosen_codes = column_codes[chosen]
    confidence = values[np.arange(len(values)), chosen]
    task_index = probas.index.to_numpy().astype(np.int64)

    answer_of_task = np.full(len(task_ids), -1, dtype=np.int64)
    answer_of_task[task_index] = chosen_codes
    matches = codec.codes == answer_of_task[task_codes]
    votes = np.bincount(task_codes, minlength=len(task_ids))
    agreed = np.bincount(task_codes, weights=matches, minlength=len(task_ids))

    result = AggregationResult()
    result.task_ids = [str(task_ids[i]) for i in task_index]
    result.answers = [codec.classes[c] for c in chosen_codes]
    result.confidences = [float(x) for x in confidence]
    result.agreements = [float(agreed[i] / votes[i]) for i in task_index]
    _fill_skills(result, worker_ids, worker_codes, skills)
    return result


def _gold_labels(
    codec: _LabelCodec, task_ids: np.ndarray, gold: Mapping[str, Any]
) -> pd.Series | None:
    """Gold answers as crowd-kit's `true_labels` (task code -> class code), for the gold tasks
    that have answers and whose gold answer is one of the classes the workers gave."""
    if not gold:
        return None
    code_of_task = {str(task_id): i for i, task_id in enumerate(task_ids)}
    pairs = {}
    for task_id, answer in gold.items():
        task_code, class_code = code_of_task.get(task_id), codec.code_of(answer)
        if task_code is not None and class_code is not None:
            pairs[task_code] = class_code
    if not pairs:
        return None
    return pd.Series(pairs, name="label", dtype=np.int64).rename_axis("task")


def _dawid_skene_skills(errors: pd.DataFrame, priors: pd.Series) -> pd.Series:
    """P(right answer) = sum_c prior(c) * P(answer c | truth c), from crowd-kit's fitted
    confusion matrices (`errors_`: rows (worker, given label), columns the true label)."""
    frame = errors.reset_index()
    diagonal = frame[frame["label"].isin(errors.columns)]
    weights = diagonal.apply(
        lambda row: row[row["label"]] * float(priors.get(row["label"], 0.0)), axis=1
    )
    return weights.groupby(diagonal["worker"]).sum()


def _glad_alpha_priors(
    worker_ids: np.ndarray, gold_stats: Mapping[str, tuple[int, int]]
) -> pd.Series | None:
    """GLAD's prior mean of each worker's ability: the log-odds of their Laplace-smoothed gold
    accuracy, (correct + 1) / (answered + 2), where they answered gold tasks; crowd-kit's
    default 1.0 elsewhere. None (crowd-kit's default for everyone) without gold answers."""
    if not any(gold_stats.get(str(w), (0, 0))[0] for w in worker_ids):
        return None
    values = []
    for worker_id in worker_ids:
        answered, correct = gold_stats.get(str(worker_id), (0, 0))
        if answered:
            accuracy = (correct + 1) / (answered + 2)
            values.append(math.log(accuracy / (1 - accuracy)))
        else:
            values.append(1.0)
    return pd.Series(values, index=pd.RangeIndex(len(worker_ids)), dtype=float)


def _fill_skills(
    result: AggregationResult,
    worker_ids: np.ndarray,
    worker_codes: np.ndarray,
    skills: pd.Series | None,
) -> None:
    counts = np.bincount(worker_codes, minlength=len(worker_ids))
    lookup = {} if skills is None else skills.to_dict()
    result.worker_ids = [str(w) for w in worker_ids]
    result.worker_answers = [int(n) for n in counts]
    result.skills = [
        None if (v := lookup.get(i)) is None or not math.isfinite(float(v)) else float(v)
        for i in range(len(worker_ids))
    ]


# --- texts and boxes: the aggregate compared by the gold rule -----------------------------


def _match_skills(
    result: AggregationResult,
    answers: pd.DataFrame,
    parsed: Sequence[Any],
    aggregate_of: Mapping[str, Any],
    task_type: str,
) -> None:
    """Agreement per task and skill per worker: answers judged equal to the aggregate by the
    gold-grading rule, over the task's (the worker's) answers."""
    matches = np.array(
        [
            is_gold_correct(task_type=task_type, answer=answer, gold_answer=aggregate_of[task])
            for task, answer in zip(answers["task"], parsed, strict=True)
        ],
        dtype=float,
    )
    by_task = pd.Series(matches).groupby(answers["task"].to_numpy()).mean()
    result.agreements = [float(by_task[t]) for t in result.task_ids]
    worker_codes, worker_ids = _factorize_sorted(answers["worker"])
    skill_values = pd.Series(matches).groupby(worker_codes).mean()
    _fill_skills(result, worker_ids, worker_codes, skill_values)


def _tokens(text: str) -> list[str]:
    return text.split()


def _join_tokens(tokens: list[str]) -> str:
    return " ".join(tokens)


def _aggregate_texts(
    answers: pd.DataFrame, progress: JobProgress | None = None
) -> AggregationResult:
    """crowd-kit's ROVER over whitespace tokens (punctuation stays on its word)."""
    from crowdkit.aggregation import ROVER

    data = pd.DataFrame(
        {"task": answers["task"], "worker": answers["worker"], "text": answers["answer"]}
    )
    rover = ROVER(tokenizer=_tokens, detokenizer=_join_tokens, silent=progress is None)
    texts = rover.fit_predict(data)
    texts = texts.sort_index()
    result = AggregationResult()
    result.task_ids = [str(t) for t in texts.index]
    result.answers = [{"text": str(text)} for text in texts.to_numpy()]
    result.confidences = [None] * len(result.task_ids)
    aggregate_of = dict(zip(result.task_ids, result.answers, strict=True))
    parsed = [{"text": text} for text in answers["answer"]]
    _match_skills(result, answers, parsed, aggregate_of, "transcription")
    return result


def _rasterize(boxes: Sequence[Mapping[str, Any]], grid: int) -> np.ndarray:
    mask = np.zeros((grid, grid), dtype=bool)
    for box in boxes:
        x0 = math.floor(box["x"] * grid)
        y0 = math.floor(box["y"] * grid)
        x1 = math.ceil((box["x"] + box["width"]) * grid)
        y1 = math.ceil((box["y"] + box["height"]) * grid)
        mask[max(y0, 0) : min(max(y1, y0 + 1), grid), max(x0, 0) : min(max(x1, x0 + 1), grid)] = (
            True
        )
    return mask


def _boxes_of(mask: np.ndarray, label: str, grid: int) -> list[dict[str, Any]]:
    """Each connected region of the aggregate mask as its bounding box, in image fractions."""
    from scipy import ndimage

    regions, _ = ndimage.label(mask)
    boxes = []
    for rows, cols in ndimage.find_objects(regions):
        boxes.append(
            {
                "label": label,
                "x": cols.start / grid,
                "y": rows.start / grid,
                "width": (cols.stop - cols.start) / grid,
                "height": (rows.stop - rows.start) / grid,
            }
        )
    return boxes


def _aggregate_boxes(
    answers: pd.DataFrame, grid: int, progress: JobProgress | None = None
) -> AggregationResult:
    """crowd-kit's SegmentationEM per (task, label): each worker's boxes of one label drawn as
    one mask (no box of that label = an empty mask, a vote that there is none)."""
    from crowdkit.aggregation import SegmentationEM

    parsed = [orjson.loads(text) for text in answers["answer"]]
    boxes_of_answer: list[list[dict[str, Any]]] = [
        [b for b in (p.get("boxes") if isinstance(p, dict) else None) or [] if isinstance(b, dict)]
        for p in parsed
    ]
    tasks = answers["task"].to_numpy()
    workers = answers["worker"].to_numpy()
    rows_of_task: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        rows_of_task.setdefault(task, []).append(i)
    task_order = sorted(rows_of_task)
    aggregate_of: dict[str, Any] = {}
    for start in range(0, len(task_order), BOX_TASKS_PER_BATCH):
        batch = task_order[start : start + BOX_TASKS_PER_BATCH]
        if progress is not None:
            progress.part(start / len(task_order), len(batch) / len(task_order))
        keys: list[tuple[str, str]] = []
        key_column: list[int] = []
        worker_column: list[str] = []
        masks: list[np.ndarray] = []
        for task in batch:
            labels = sorted(
                {str(b.get("label")) for i in rows_of_task[task] for b in boxes_of_answer[i]}
            )
            for label in labels:
                keys.append((task, label))
                for i in rows_of_task[task]:
                    chosen = [b for b in boxes_of_answer[i] if str(b.get("label")) == label]
                    key_column.append(len(keys) - 1)
                    worker_column.append(workers[i])
                    masks.append(_rasterize(chosen, grid))
        found: dict[str, list[dict[str, Any]]] = {task: [] for task in batch}
        if keys:
            data = pd.DataFrame(
                {"task": key_column, "worker": worker_column, "segmentation": masks}
            )
            segmentations = SegmentationEM().fit_predict(data)
            for key, mask in segmentations.items():
                task, label = keys[int(key)]
                found[task].extend(_boxes_of(np.asarray(mask, dtype=bool), label, grid))
        for task in batch:
            aggregate_of[task] = {"boxes": found[task]}
    result = AggregationResult()
    result.task_ids = task_order
    result.answers = [aggregate_of[t] for t in task_order]
    result.confidences = [None] * len(task_order)
    _match_skills(result, answers, parsed, aggregate_of, "bounding_box")
    return result
