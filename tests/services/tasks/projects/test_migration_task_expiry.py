"""Migration 0007_project_task_expiry on a database that already has projects and tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from tests.conftest import ROOT, with_database

BEFORE = "0006"
REVISION = "0007_project_task_expiry"


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


async def _project(conn: asyncpg.Connection, project_id: str, *, published: bool) -> None:
    await conn.execute(
        """INSERT INTO projects (id, requester_id, status, title, task_type, reward_cents,
               fee_cents, assignment_duration_seconds, lifetime_seconds, auto_approve_seconds,
               published_at)
           VALUES ($1, 'R1', $2, 't', 'sentiment', 10, 2, 60, 3600, 60,
                   CASE WHEN $3 THEN now() - interval '10 minutes' END)""",
        project_id,
        "published" if published else "draft",
        published,
    )


async def _tasks(conn: asyncpg.Connection, project_id: str, n: int, *, expires: bool) -> None:
    for i in range(n):
        await conn.execute(
            """INSERT INTO tasks (id, project_id, requester_id, input, max_assignments,
                   open_slots, expires_at)
               VALUES ($1, $2, 'R1', '{}', 1, 1,
                       CASE WHEN $3 THEN now() + interval '50 minutes' END)""",
            f"{project_id}-T{i}",
            project_id,
            expires,
        )


async def test_upgrade_keeps_published_tasks_expiry_and_downgrade_writes_it_back(
    scratch_url: str,
) -> None:
    _alembic(scratch_url, "upgrade", BEFORE)
    conn = await asyncpg.connect(scratch_url)
    try:
        await conn.execute(
            "INSERT INTO accounts (id, kind, name, email) VALUES"
            " ('R1', 'requester', 'Req', 'r1@example.com')"
        )
        await _project(conn, "LIVE", published=True)  # published the old way: rows have expiry
        await _tasks(conn, "LIVE", 2, expires=True)
        await _project(conn, "DRAFT", published=False)
        await _tasks(conn, "DRAFT", 2, expires=False)
        expiry_before = await conn.fetch("SELECT id, expires_at FROM tasks ORDER BY id")
    finally:
        await conn.close()

    _alembic(scratch_url, "upgrade", REVISION)
    conn = await asyncpg.connect(scratch_url)
    try:
        projects = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, published_at, tasks_expire_at, tasks_expiry_swept_at FROM projects"
            )
        }
        live = projects["LIVE"]
        assert live["tasks_expire_at"] - live["published_at"] == timedelta(seconds=3600)
        assert live["tasks_expiry_swept_at"] is not None  # none of its tasks inherits
        assert (
            projects["DRAFT"]["tasks_expire_at"],
            projects["DRAFT"]["tasks_expiry_swept_at"],
        ) == (
            None,
            None,
        )
        assert await conn.fetch("SELECT id, expires_at FROM tasks ORDER BY id") == expiry_before
        # A project published the new way: its tasks inherit the project's expiry.
        await conn.execute(
            "UPDATE projects SET status = 'published', published_at = now(),"
            " tasks_expire_at = now() + interval '1 hour' WHERE id = 'DRAFT'"
        )
        inherited = await conn.fetchval("SELECT tasks_expire_at FROM projects WHERE id = 'DRAFT'")
    finally:
        await conn.close()

    _alembic(scratch_url, "downgrade", BEFORE)
    conn = await asyncpg.connect(scratch_url)
    try:
        after = {
            r["id"]: r["expires_at"] for r in await conn.fetch("SELECT id, expires_at FROM tasks")
        }
        before = {r["id"]: r["expires_at"] for r in expiry_before}
        assert after == {
            task_id: inherited if task_id.startswith("DRAFT") else expires_at
            for task_id, expires_at in before.items()
        }
    finally:
        await conn.close()
