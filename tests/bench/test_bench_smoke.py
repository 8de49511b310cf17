"""The benchmark's CI smoke: its tiniest configuration against the test stack, in seconds.

The bench is a tool, not a test: this only keeps it working. It checks that every figure is
produced from real measurements (positive, finite ratios; the phases behind them ran without
errors; the approvals were really paid and the ledger balances), never the targets: timings on
a shared CI machine are not assertions.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from bench.report import write_json
from bench.run import add_reference, run_bench
from bench.scenarios import PROFILES
from bench.stack import ProcessGroup, Stack

pytestmark = pytest.mark.timeout(240)

SMOKE = PROFILES["smoke"]
RATIO_FIGURES = [
    *(f"cycles_{c}" for c in SMOKE.concurrencies),
    "churn",
    "scale_accept_p99",
    "scale_discovery_p99",
    "upload",
    "approve",
    "heartbeats",
    "heartbeat_p99",
]
MEMORY_FIGURES = ["memory_tasks", "memory_workers", "memory_payments", "memory_reference"]


@pytest.fixture(scope="module")
def report(live_services, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    stack = Stack(
        urls=dict(live_services.urls),
        database_url=database_url,
        internal_token=live_services.env["TASKS_INTERNAL_TOKEN"],
        pids={svc: proc.pid for svc, proc in live_services.procs.items()},
    )
    group = ProcessGroup(tmp_path_factory.mktemp("bench-logs"))
    try:
        add_reference(stack, group, workers=1, pool_size=4)
        payload = asyncio.run(run_bench(SMOKE, stack, say=lambda _line: None))
    finally:
        group.stop_all()
    return payload


def test_every_figure_is_reported_with_a_positive_ratio(report: dict) -> None:
    figures = {f["key"]: f for f in report["figures"]}
    for key in RATIO_FIGURES:
        assert key in figures, f"missing figure {key}"
        figure = figures[key]
        for field in ("value", "reference", "ratio"):
            number = figure[field]
            assert isinstance(number, float) and math.isfinite(number) and number > 0, (
                key,
                field,
                number,
            )
        assert figure["ratio"] == pytest.approx(figure["value"] / figure["reference"])
        # Targets are printed, never asserted: the verdict is there, whichever it is.
        assert figure["passed"] in (True, False) if figure["target"] else figure["passed"] is None


def test_latency_rows_accompany_each_throughput(report: dict) -> None:
    keys = {f["key"] for f in report["figures"]}
    for concurrency in SMOKE.concurrencies:
        for op in ("accept", "submit"):
            for pct in (50, 99):
                assert f"cycles_{concurrency}_{op}_p{pct}" in keys


def test_memory_is_sampled_for_each_service(report: dict) -> None:
    figures = {f["key"]: f for f in report["figures"]}
    for key in MEMORY_FIGURES:
        # A Python web process cannot run in under 10 MiB: a zero means nothing was sampled.
        assert figures[key]["value"] > 10, key


def test_the_measured_phases_ran_clean(report: dict) -> None:
    """No request failed and no client ran out of work: the figures come from complete runs."""
    figures = {f["key"]: f for f in report["figures"]}
    for concurrency in SMOKE.concurrencies:
        details = figures[f"cycles_{concurrency}"]["details"]
        for side in ("api", "reference"):
            assert details[side]["units"] > 0
            assert "errors" not in details[side], details[side]["errors"]
    assert "errors" not in figures["churn"]["details"]["phase"]
    approve = figures["approve"]["details"]
    assert approve["assignments"] == SMOKE.approve_count
    assert "errors" not in approve["approve_calls"]
    assert approve["ledger_check"]["ok"] is True
    beats = figures["heartbeats"]["details"]
    assert beats["open_sessions"] == SMOKE.heartbeat_sessions_large
    assert "errors" not in beats["heartbeats"] and "errors" not in beats["accepts"]
    assert beats["budget_check"]["ok"] is True and beats["budget_check"]["seconds_counted"] >= 0


def test_the_report_is_printable_and_serialisable(report: dict, tmp_path: Path) -> None:
    for key in RATIO_FIGURES:
        title = next(f["title"] for f in report["figures"] if f["key"] == key)
        assert title in report["table"]
    path = tmp_path / "bench.json"
    write_json(path, report)
    assert json.loads(path.read_text())["figures"] == json.loads(json.dumps(report["figures"]))
    assert report["machine"]["nproc"] >= 1 and report["machine"]["postgres"]
