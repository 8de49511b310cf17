"""Migration 0002 on a database that already has data: backfills, downgrade, truncate."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.eligibility import LEVEL_TYPE_ID, SYSTEM_TYPE_NAMES
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


async def test_upgrade_backfills_profiles_and_stats(scratch_url: str) -> None:
    _alembic(scratch_url, "upgrade", "0001")
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute(
            """INSERT INTO accounts (id, kind, name, email, country, languages) VALUES
               ('W1', 'worker', 'Early Bird', 'w1@example.com', 'IN', '{hi,en}'),
               ('R1', 'requester', 'Req', 'r1@example.com', NULL, '{}')"""
        )
        await conn.execute(
            """INSERT INTO projects (id, requester_id, title, task_type, reward_cents, fee_cents,
                   assignment_duration_seconds, lifetime_seconds, auto_approve_seconds)
               VALUES ('P1', 'R1', 't', 'sentiment', 1, 1, 60, 60, 60)"""
        )
        for i, status in enumerate(["approved", "approved", "rejected", "submitted", "expired"]):
            await conn.execute(
                "INSERT INTO tasks (id, project_id, requester_id, input, max_assignments, "
                "open_slots) VALUES ($1, 'P1', 'R1', '{}', 1, 0)",
                f"T{i}",
            )
            await conn.execute(
                """INSERT INTO assignments (id, task_id, project_id, requester_id, worker_id,
                       status, reward_cents, fee_cents, deadline)
                   VALUES ($1, $2, 'P1', 'R1', 'W1', $3, 1, 1, now())""",
                f"A{i}",
                f"T{i}",
                status,
            )
    finally:
        await conn.close()

    _alembic(scratch_url, "upgrade", "0002")
    conn = await asyncpg.connect(scratch_url)
    try:
        profile = await conn.fetchrow("SELECT * FROM worker_profiles WHERE worker_id = 'W1'")
        assert (profile["display_name"], profile["country"], profile["languages"]) == (
            "Early Bird",
            "IN",
            ["hi", "en"],
        )
        assert await conn.fetchval("SELECT count(*) FROM worker_profiles") == 1
        stats = await conn.fetchrow("SELECT * FROM worker_stats WHERE worker_id = 'W1'")
        assert (stats["submitted_count"], stats["approved_count"], stats["rejected_count"]) == (
            4,
            2,
            1,
        )
        names = dict(await conn.fetch("SELECT id, name FROM qualification_types WHERE is_system"))
        # 0002's system types: every one but system.level (added by 0015_levels)
        assert names == {k: v for k, v in SYSTEM_TYPE_NAMES.items() if k != LEVEL_TYPE_ID}

        # TRUNCATE of assignments cannot leave stale counters behind
        await conn.execute("TRUNCATE assignments")
        assert await conn.fetchval("SELECT count(*) FROM worker_stats") == 0
    finally:
        await conn.close()

    _alembic(scratch_url, "downgrade", "0001")
    conn = await asyncpg.connect(scratch_url)
    try:
        left = await conn.fetchval(
            """SELECT count(*) FROM pg_tables WHERE tablename IN ('worker_profiles',
               'worker_stats', 'qualification_types', 'worker_blocks')"""
        )
        assert left == 0
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'assignments_worker_stats%'"
        )
        assert triggers == 0
    finally:
        await conn.close()
