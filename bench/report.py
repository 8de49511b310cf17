"""Figures, the printed table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Figure:
    """One line of the report. `ratio` is value / reference (both measured in the same run);
    `target` is a comparison on the ratio (">= 0.8", "<= 1.5") or None for information only."""

    key: str
    title: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_label: str = ""
    ratio: float | None = None
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        op, bound = self.target.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def machine_description(postgres_version: str | None = None) -> dict[str, Any]:
    memory = psutil.virtual_memory().total
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "postgres": postgres_version or "",
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ratio" or abs(value) < 10:
        text = f"{value:.2f}"
    elif abs(value) < 1000:
        text = f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return text


def table(figures: list[Figure]) -> str:
    header = ["figure", "value", "unit", "reference", "ratio", "target", "result"]
    rows = []
    for fig in figures:
        result = {True: "PASS", False: "FAIL", None: ""}[fig.passed]
        reference = _fmt(fig.reference)
        if fig.reference_label and fig.reference is not None:
            reference += f" ({fig.reference_label})"
        rows.append(
            [
                fig.title,
                _fmt(fig.value),
                fig.unit,
                reference,
                _fmt(fig.ratio, "ratio"),
                fig.target or "",
                result,
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {1, 3, 4}
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = [
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
