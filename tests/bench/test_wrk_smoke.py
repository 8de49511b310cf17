"""The wrk bench's CI smoke (bench/wrkbench.py): its tiniest configuration against the test
stack. It checks that every figure comes from real work (cycles and approvals answered on both
sides, none refused, CPU counted for the services, Postgres and wrk itself, every payout
delivered and the ledger balanced), never the targets: timings on a shared machine are not
assertions. Skipped, saying how to install it, where wrk is missing (CI installs it)."""

from __future__ import annotations

import asyncio
import math
import shutil

import pytest

from bench.run import add_reference
from bench.stack import ProcessGroup, Stack
from bench.wrkbench import PROFILES, WRK_INSTALL_HINT, loadgen_share, run_wrk_bench

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("wrk") is None, reason=WRK_INSTALL_HINT),
]

SMOKE = PROFILES["smoke"]


@pytest.fixture(scope="module")
def report(live_services, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    stack = Stack(
        urls=dict(live_services.urls),
        database_url=database_url,
        internal_token=live_services.env["TASKS_INTERNAL_TOKEN"],
        pids={svc: proc.pid for svc, proc in live_services.procs.items()},
    )
    group = ProcessGroup(tmp_path_factory.mktemp("wrk-bench-logs"))
    try:
        add_reference(stack, group, workers=1, pool_size=4)
        payload = asyncio.run(run_wrk_bench(SMOKE, stack, say=lambda _line: None))
    finally:
        group.stop_all()
    return payload


def _positive(number: object) -> bool:
    return isinstance(number, float | int) and math.isfinite(number) and number > 0


def test_each_side_completed_cycles_without_a_refusal(report: dict) -> None:
    assert [c["connections"] for c in report["cycles"]] == list(SMOKE.concurrencies)
    for result in report["cycles"]:
        for side in ("api", "reference"):
            summary = result[side]
            assert summary["units"] > 0, side
            assert summary["failed"] == {}, (side, summary["failed"])


def test_cpu_per_cycle_is_counted_for_service_postgres_and_wrk(report: dict) -> None:
    for result in report["cycles"]:
        for side, service in (("api", "tasks"), ("reference", "reference")):
            per_unit = result[side]["cpu_ms_per_unit"]
            # All of Postgres, and the part served by this side's own connections (by
            # application_name), which the target's figure charges.
            for name in (service, "postgres", f"pg:{service}", "wrk"):
                assert _positive(per_unit.get(name)), (side, name, per_unit)
            assert per_unit[f"pg:{service}"] <= per_unit["postgres"]
            assert _positive(result[side]["service_plus_postgres_ms_per_unit"])
        assert _positive(result["cpu_ratio"]) and _positive(result["throughput_ratio"])


def test_the_load_generator_share_is_measured_for_every_run(report: dict) -> None:
    from bench.wrkbench import WrkRun

    runs = [WrkRun(**{k: v for k, v in r.items() if k != "units"}) for r in report["runs"]]
    assert {r.side for r in runs} == {"api", "reference"}
    for run in runs:
        assert run.cpu_seconds["wrk"] > 0
        assert 0 < loadgen_share(run) < 1
    assert "load generator (wrk) share" in report["table"]


def test_approvals_are_each_answered_once_and_paid(report: dict) -> None:
    approve = report["approve"]
    for side in ("api", "reference"):
        assert approve[side]["failed"] == {}, approve[side]["failed"]
    for run in (r for r in report["runs"] if r["scenario"] == "approve"):
        # Every id offered was approved (200) exactly once, and the phase ended with the outbox
        # empty: the payouts of both sides were delivered to payments.
        assert run["ok"].get("approve") == run["extra"]["ids_offered"], run
        assert run["exhausted_threads"] == SMOKE.approve_concurrency
    assert report["ledger_ok"] is True


def test_verdicts_name_the_targets_and_are_printed(report: dict) -> None:
    titles = [row["title"] for row in report["verdicts"]]
    for conns in SMOKE.concurrencies:
        assert f"cycle @{conns}: service+Postgres CPU ms/cycle" in titles
        assert f"cycle @{conns}: cycles/s" in titles
    for row in report["verdicts"]:
        assert row["title"] in report["table"]
        if row["target"] is not None:
            assert row["passed"] in (True, False)
