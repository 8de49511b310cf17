"""Progress inside crowd-kit: its progress bars counted into the job's fraction done, written to
the file the service's heartbeat reads; the same aggregates as without it; crowd-kit's own tqdm
put back afterwards."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from bench.aggregation import LABELS, simulated_crowd
from services.tasks.results.crowd import aggregate, run_job
from services.tasks.results.methods import JobSpec, ProjectShape
from services.tasks.results.progress import (
    JobProgress,
    ProgressBar,
    crowdkit_progress,
    read_progress,
)

SHAPE = ProjectShape("classification", LABELS, False)


class RecordingProgress(JobProgress):
    """Every report, unthrottled."""

    def __init__(self) -> None:
        super().__init__(None, interval=0.0)
        self.values: list[float] = []

    def report(self, fraction_of_part: float, *, force: bool = False) -> None:
        self.values.append(self._base + self._span * fraction_of_part)


def _crowd_frame(tasks: int) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    rows = simulated_crowd(tasks=tasks, per_task=5, seed=7).rows
    return pd.DataFrame(rows, columns=["task", "worker", "answer"]), rows


def test_nested_bars_are_one_fraction_of_the_outer_bar() -> None:
    progress = RecordingProgress()
    with crowdkit_progress(progress):
        outer = iter(ProgressBar(range(10)))
        next(outer), next(outer), next(outer)  # two outer steps done, the third running
        inner = iter(ProgressBar(range(4)))
        next(inner), next(inner), next(inner)  # two of its four inner steps done
        assert ProgressBar.fraction() == pytest.approx((2 + 2 / 4) / 10)
        list(inner)  # closed: the outer step counts once the outer loop moves on
        assert ProgressBar.fraction() == pytest.approx(2 / 10)
        next(outer)
        assert ProgressBar.fraction() == pytest.approx(3 / 10)
        list(outer)
    assert progress.values[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["glad", "mace"])
def test_crowd_kit_iterations_are_reported_and_change_nothing(method: str) -> None:
    import crowdkit.aggregation.classification.glad as glad_module

    original_tqdm = glad_module.tqdm
    answers, _ = _crowd_frame(60)
    plain = aggregate(method, SHAPE, answers)
    progress = RecordingProgress()
    with crowdkit_progress(progress):
        reported = aggregate(method, SHAPE, answers, progress=progress)
    assert glad_module.tqdm is original_tqdm  # put back
    assert reported.answers == plain.answers
    assert reported.confidences == pytest.approx(plain.confidences)
    # Many reports, never going backwards, strictly between the start and the end on the way.
    assert len(progress.values) > 5
    assert progress.values == sorted(progress.values)
    assert 0.0 < progress.values[len(progress.values) // 2] < 1.0


def test_boxes_report_their_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.tasks.results import crowd

    monkeypatch.setattr(crowd, "BOX_TASKS_PER_BATCH", 2)
    box = '{"boxes": [{"label": "car", "x": 0.1, "y": 0.1, "width": 0.3, "height": 0.2}]}'
    rows = [(f"t{t}", f"w{w}", box) for t in range(6) for w in range(3)]
    progress = RecordingProgress()
    aggregate(
        "segmentation_em",
        ProjectShape("bounding_box", None, False),
        pd.DataFrame(rows, columns=["task", "worker", "answer"]),
        box_grid=16,
        progress=progress,
    )
    assert progress.values == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_the_job_writes_its_fraction_for_the_heartbeat(tmp_path: Path) -> None:
    _, rows = _crowd_frame(40)
    answers_path = tmp_path / "answers.csv"
    with open(answers_path, "w", newline="") as file:
        csv.writer(file).writerows(rows)
    progress_path = tmp_path / "progress"
    assert read_progress(str(progress_path)) is None  # nothing written yet
    spec = JobSpec(
        method="glad",
        shape=SHAPE,
        answers_path=str(answers_path),
        gold={},
        gold_stats={},
        progress_path=str(progress_path),
    )
    result = run_job(spec)
    assert len(result.task_ids) == 40
    assert read_progress(str(progress_path)) == 1.0


@pytest.mark.parametrize("content", ["", "abc", "1.5", "-0.1", "nan"])
def test_an_unreadable_progress_file_is_no_figure(tmp_path: Path, content: str) -> None:
    path = tmp_path / "progress"
    path.write_text(content)
    assert read_progress(str(path)) is None
    assert read_progress(None) is None
