"""CPU per phase (bench/stack.py cpu_used): a process is matched across snapshots by pid and a
start time that may move by a second (psutil reads it from the boot time, which a virtual
machine's clock steps move); a pid reused by a new process counts from zero."""

from __future__ import annotations

from bench.stack import cpu_before, cpu_used


def test_a_process_whose_start_time_moved_a_second_is_charged_only_the_phase() -> None:
    before = {"tasks": {(100, 1_000.0): 60.0}, "machine": {(0, 0.0): 500.0}}
    after = {"tasks": {(100, 1_001.0): 70.0}, "machine": {(0, 0.0): 520.0}}
    assert cpu_used(before, after) == {"tasks": 10.0, "machine": 20.0}


def test_a_new_process_and_a_reused_pid_count_from_zero() -> None:
    earlier = {(100, 1_000.0): 60.0}
    assert cpu_before(earlier, (100, 1_000.0)) == 60.0
    assert cpu_before(earlier, (100, 5_000.0)) == 0.0  # the pid, reused much later
    assert cpu_before(earlier, (101, 1_000.0)) == 0.0
