"""How far a running aggregation has got inside crowd-kit, passed from the job process to the
service through a small file.

A big project's GLAD or MACE fit runs for minutes to an hour (docs/architecture.md), and the
status URL should say more than "aggregating" all that time. crowd-kit reports its progress only
through tqdm progress bars (GLAD's and MACE's iterations, MACE's restarts, ROVER's tasks), so the
job process swaps those modules' `tqdm` for `ProgressBar`, which counts instead of drawing, and
`JobProgress` writes the fraction done to a file the service's heartbeat reads (the pool's
processes are spawned: a file needs no shared memory or pipe set up before the pool exists).
The fraction is an upper-bound estimate: EM methods stop early when they converge, so the
figure may jump to the end. Nothing here imports crowd-kit, pandas or numpy.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

# crowd-kit modules whose fits report through tqdm (module -> the names they imported).
CROWDKIT_PROGRESS_MODULES = {
    "crowdkit.aggregation.classification.glad": ("tqdm", "trange"),
    "crowdkit.aggregation.classification.mace": ("tqdm", "trange"),
    "crowdkit.aggregation.texts.rover": ("tqdm",),
}


def read_progress(path: str | None) -> float | None:
    """The fraction (0-1) the job last wrote, or None when it has written none yet."""
    if path is None:
        return None
    try:
        with open(path) as file:
            value = float(file.read().strip() or "nan")
    except (OSError, ValueError):
        return None
    if not 0.0 <= value <= 1.0:  # also NaN
        return None
    return value


class JobProgress:
    """The job process's side: the fraction done, written at most every `interval` seconds
    (atomically: a reader never sees half a number)."""

    def __init__(self, path: str | None, *, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._written_at = 0.0
        self._base = 0.0  # the share of the job before the current part
        self._span = 1.0  # the current part's share of the job

    def part(self, done: float, span: float) -> None:
        """The next progress reports are within [done, done + span] of the whole job (e.g. one
        batch of many)."""
        self._base, self._span = done, span
        self.report(0.0)

    def report(self, fraction_of_part: float, *, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._written_at < self.interval:
            return
        self._written_at = now
        value = min(max(self._base + self._span * fraction_of_part, 0.0), 1.0)
        temporary = f"{self.path}.tmp"
        with open(temporary, "w") as file:
            file.write(f"{value:.4f}")
        os.replace(temporary, self.path)


class ProgressBar:
    """What crowd-kit calls on a tqdm bar (iterate it, set_description, set_postfix, update,
    close), counted into the job's progress. Nested bars (MACE's iterations inside restarts)
    combine: the inner bar's fraction is a fraction of one step of the outer one."""

    progress: ClassVar[JobProgress | None] = None
    _open: ClassVar[list[ProgressBar]] = []

    def __init__(
        self, iterable: Iterable[Any] | None = None, total: int | None = None, **_: Any
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        ProgressBar._open.append(self)
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            with contextlib.suppress(ValueError):
                ProgressBar._open.remove(self)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if ProgressBar.progress is not None:
            ProgressBar.progress.report(self.fraction())

    @classmethod
    def fraction(cls) -> float:
        """The open bars, outermost first, as one fraction of the outermost."""
        value = 0.0
        for bar in reversed(cls._open):
            if not bar.total:
                return 0.0
            value = min((bar.n + value) / bar.total, 1.0)
        return value

    def set_description(self, *_: Any, **__: Any) -> None:
        pass

    def set_postfix(self, *_: Any, **__: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_range(n: int, **kwargs: Any) -> ProgressBar:
    """tqdm's `trange`."""
    return ProgressBar(range(n), **kwargs)


@contextlib.contextmanager
def crowdkit_progress(progress: JobProgress) -> Iterator[None]:
    """While inside, crowd-kit's progress bars report to `progress` (and draw nothing)."""
    replaced: list[tuple[Any, str, Any]] = []
    stand_ins = {"tqdm": ProgressBar, "trange": progress_range}
    for module_name, names in CROWDKIT_PROGRESS_MODULES.items():
        module = importlib.import_module(module_name)
        for name in names:
            replaced.append((module, name, getattr(module, name)))
            setattr(module, name, stand_ins[name])
    ProgressBar.progress, ProgressBar._open = progress, []
    try:
        yield
    finally:
        ProgressBar.progress = None
        for module, name, original in replaced:
            setattr(module, name, original)
