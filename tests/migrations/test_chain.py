"""The migrations and the models describe the same schema, and the chain runs both ways."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg

from tests.conftest import ROOT, with_database


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )


def test_models_match_the_migrated_schema(database_url: str) -> None:
    done = alembic(database_url, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr


def test_chain_downgrades_to_base_and_upgrades_again(postgres_server: str) -> None:
    name = f"migrations_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(with_database(postgres_server, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = with_database(postgres_server, name)
    try:
        for step in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
            done = alembic(url, *step)
            assert done.returncode == 0, f"{step}: {done.stderr[-3000:]}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
