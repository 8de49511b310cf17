"""bench/mturk.py in its tiniest configuration against the live test stack: every figure is
produced (never that a target is met: timings on a shared machine are not assertions)."""

from __future__ import annotations

import asyncio

from bench.mturk import compare, sigv4_costs
from tests.conftest import LiveServices


def test_mturk_bench_produces_every_figure(live_services: LiveServices) -> None:
    results = asyncio.run(compare(live_services.urls, seconds=0.3, rounds=1, concurrency=2))
    assert set(results) == {"CreateHIT", "ListAssignmentsForHIT"}
    for figures in results.values():
        assert figures["errors"] == 0
        assert figures["door_per_s"][0] > 0 and figures["native_per_s"][0] > 0
        assert figures["ratio"] > 0
    costs = sigv4_costs(iterations=20)
    assert costs["verify_us"] > 0 and costs["sign_us"] > 0
