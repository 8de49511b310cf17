"""Migration 0015 on a database that already has workers: the tests they passed are recorded,
every worker with stats is queued for its first level, and the system.level type exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.eligibility import LEVEL_TYPE_ID
from tests.conftest import ROOT, with_database


def _alembic(url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


@pytest.fixture
async def scratch_url(postgres_server: str) -> AsyncIterator[str]:
    name = f"test_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_server, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


_QUESTIONS = json.dumps([{"id": "q1", "prompt": "?", "kind": "text"}])


async def test_upgrade_records_past_test_passes_and_queues_workers(scratch_url: str) -> None:
    _alembic(scratch_url, "upgrade", "0014_standing_contract")
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute(
            """INSERT INTO accounts (id, kind, name, email, email_normalized) VALUES
               ('W1', 'worker', 'One', 'w1@example.com', 'w1@example.com'),
               ('W2', 'worker', 'Two', 'w2@example.com', 'w2@example.com'),
               ('R1', 'requester', 'Req', 'r1@example.com', 'r1@example.com')"""
        )
        await conn.execute(
            """INSERT INTO qualification_types (id, owner_id, name, is_system) VALUES
               ('Q1', 'R1', 'one', false), ('Q2', 'R1', 'two', false),
               ('Q3', 'R1', 'three', false)"""
        )
        # W1: Q1 passed twice (counts once), Q2 scored 0 (no pass), Q3 a plain request granted
        # (no test); W2: nothing passed.
        attempts = [
            ("A1", "Q1", "W1", "granted", _QUESTIONS, 100),
            ("A2", "Q1", "W1", "granted", _QUESTIONS, 80),
            ("A3", "Q2", "W1", "granted", _QUESTIONS, 0),
            ("A4", "Q3", "W1", "granted", "[]", 1),
            ("A5", "Q1", "W2", "rejected", _QUESTIONS, None),
        ]
        for attempt_id, type_id, worker_id, status, questions, value in attempts:
            await conn.execute(
                """INSERT INTO qualification_attempts (id, qualification_type_id, worker_id,
                       status, questions, value, started_at)
                   VALUES ($1, $2, $3, $4, $5::jsonb, $6, now())""",
                attempt_id,
                type_id,
                worker_id,
                status,
                questions,
                value,
            )
        await conn.execute(
            "INSERT INTO worker_stats (worker_id, submitted_count, approved_count) "
            "VALUES ('W2', 3, 2)"
        )
    finally:
        await conn.close()

    _alembic(scratch_url, "upgrade", "0015_levels")
    conn = await asyncpg.connect(scratch_url)
    try:
        passed = await conn.fetch(
            "SELECT worker_id, qualification_type_id, via FROM worker_tests_passed"
        )
        assert [tuple(r) for r in passed] == [("W1", "Q1", "test")]
        queued = await conn.fetchval(
            "SELECT array_agg(worker_id ORDER BY worker_id) FROM worker_level_queue"
        )
        assert queued == ["W1", "W2"]  # a passed test, stats
        assert (
            await conn.fetchval(
                "SELECT name FROM qualification_types WHERE id = $1 AND is_system", LEVEL_TYPE_ID
            )
            == "system.level"
        )
    finally:
        await conn.close()

    _alembic(scratch_url, "downgrade", "0014_standing_contract")
    conn = await asyncpg.connect(scratch_url)
    try:
        assert not await conn.fetchval(
            "SELECT count(*) FROM qualification_types WHERE id = $1", LEVEL_TYPE_ID
        )
        assert not await conn.fetchval(
            """SELECT count(*) FROM pg_tables WHERE tablename IN ('worker_tests_passed',
               'worker_level_queue', 'worker_level_changes')"""
        )
    finally:
        await conn.close()
