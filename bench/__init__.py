"""The benchmark suite: `python3 manage.py bench` (see bench/README.md).

A tool, not a test: it starts a private stack on an embedded Postgres, seeds realistic data
through the public API, drives it with many concurrent clients and prints figures that are
ratios against references measured in the same run (the machines are small and noisy).
"""
