"""The aggregation methods a results request may name, and which task types each one fits.

This module is imported by the service process and must stay light: the methods themselves are
crowd-kit's and run in the aggregation worker process (`crowd.py`), never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AggregationMethod = Literal[
    "majority", "wawa", "dawid_skene", "glad", "mace", "rover", "segmentation_em"
]
AGGREGATION_METHODS: tuple[str, ...] = (
    "majority",
    "wawa",
    "dawid_skene",
    "glad",
    "mace",
    "rover",
    "segmentation_em",
)
LABEL_METHODS: tuple[str, ...] = ("majority", "wawa", "dawid_skene", "glad", "mace")
METHODS_BY_TASK_TYPE: dict[str, tuple[str, ...]] = {
    "classification": LABEL_METHODS,
    "sentiment": LABEL_METHODS,
    "transcription": ("rover",),
    "bounding_box": ("segmentation_em",),
    "free_form": (),
    "mturk_question": (),
}
# The crowd-kit class behind each method (documented in docs/api.md and shown in run status).
CROWD_KIT_CLASSES: dict[str, str] = {
    "majority": "MajorityVote",
    "wawa": "Wawa",
    "dawid_skene": "DawidSkene",
    "glad": "GLAD",
    "mace": "MACE",
    "rover": "ROVER",
    "segmentation_em": "SegmentationEM",
}


def methods_for(task_type: str) -> tuple[str, ...]:
    return METHODS_BY_TASK_TYPE.get(task_type, ())


# SegmentationEM works on pixel masks: boxes are drawn on a square grid of this many cells a
# side (boxes are fractions of the image), aggregated per label, and the aggregate mask's
# connected regions become boxes again. 64 cells: a box edge moves by at most 1/64 of the image.
DEFAULT_BOX_GRID = 64


@dataclass(frozen=True, slots=True)
class ProjectShape:
    task_type: str
    labels: tuple[str, ...] | None
    multi_label: bool


@dataclass(slots=True)
class AggregationResult:
    """Parallel lists, one entry per task that had answers (tasks by id); skills by worker id."""

    task_ids: list[str] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)
    agreements: list[float] = field(default_factory=list)
    worker_ids: list[str] = field(default_factory=list)
    skills: list[float | None] = field(default_factory=list)
    worker_answers: list[int] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the worker process needs: a CSV of (task_id, worker_id, answer) rows in export
    order, written by the service from Postgres' COPY, and the small gold inputs."""

    method: str
    shape: ProjectShape
    answers_path: str
    gold: Mapping[str, Any]  # task_id -> gold answer
    gold_stats: Mapping[str, tuple[int, int]]  # worker_id -> (gold answered, gold correct)
    box_grid: int = DEFAULT_BOX_GRID
    # Where the job writes its fraction done inside crowd-kit (results/progress.py); None: not
    # reported.
    progress_path: str | None = None
