"""Bytes and WAL per unit of work, measured on a seeded database: the numbers behind
docs/scaling.md.

    python -m bench.sizes [--seconds 10] [--connections 32] [--json PATH] [--keep-db]

Starts the bench's private stack (bench.stack.local_stack: embedded Postgres, migrations, the
three services), seeds through the public API (workers with keys, money, a project filled by
the bulk upload endpoint and published), then:

1. drives accept → submit with wrk (bench/lua/cycle_api.lua) for `--seconds`, and approves what
   was submitted (bench/lua/approve.lua) until every payout is delivered, reading
   `pg_current_wal_lsn()` and `pg_stat_wal` around each phase and the CPU of every process
   tree (bench.wrkbench.Meter): WAL bytes and CPU per cycle and per approval. A CHECKPOINT
   runs first, so with `full_page_writes = on` every page the window touches is logged whole
   once (`full_page_images`; the upper bound of a short window). The bench's own cluster runs
   with `full_page_writes = off` on its command line (devtools/embedded_pg.py, fast mode),
   which ALTER SYSTEM cannot override: its figures are WAL without page images, and the report
   says which setting was in force;
2. measures each table of the answer's path with `pg_total_relation_size` (heap + indexes +
   TOAST) over its row count, as written (dead versions of updated rows included) and after
   `VACUUM FULL` (compact, the floor).

Everything is printed and written as JSON; docs/scaling.md explains what the figures imply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import machine_description, write_json
from bench.stack import ROOT
from bench.wrkbench import PROFILES, WrkBench, WrkMissing, run_wrk, wrk_binary

RESULTS_DIR = ROOT / ".data" / "bench-results"

# The tables an answer writes to, from upload to payout (others: projects, accounts, keys,
# balances, holds, grow with people and projects, not with answers).
ANSWER_TABLES = (
    "tasks",
    "assignments",
    "gold_stats",
    "outbox",
    "ledger_transactions",
    "ledger_entries",
)

_SIZES_SQL = """
SELECT c.relname AS table_name,
       pg_relation_size(c.oid) AS heap_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast_bytes,
       pg_total_relation_size(c.oid) AS total_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])
"""


async def _wal_position(conn: asyncpg.Connection) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT pg_current_wal_lsn() AS lsn, wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"
    )
    return dict(row)


async def _wal_delta(conn: asyncpg.Connection, before: dict[str, Any]) -> dict[str, int]:
    after = await _wal_position(conn)
    lsn_bytes = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", after["lsn"], before["lsn"])
    return {
        "lsn_bytes": int(lsn_bytes),
        "records": int(after["wal_records"] - before["wal_records"]),
        "full_page_images": int(after["wal_fpi"] - before["wal_fpi"]),
        "stat_bytes": int(after["wal_bytes"] - before["wal_bytes"]),
    }


async def table_sizes(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in await conn.fetch(_SIZES_SQL, list(ANSWER_TABLES)):
        name = row["table_name"]
        rows = await conn.fetchval(f'SELECT count(*) FROM "{name}"')  # names from ANSWER_TABLES
        sizes = dict(row)
        sizes["rows"] = rows
        sizes["bytes_per_row"] = round(row["total_bytes"] / rows, 1) if rows else None
        out[name] = sizes
    return out


class SizesBench(WrkBench):
    """The wrk bench's seeding and metering, used for one side (the API) and its WAL."""

    def _cycle_window(self, seconds: int, connections: int) -> dict[str, Any]:
        url, script, args = self._cycle_args("api")
        before = asyncio.run(self._wal_before())
        run = self.meter.measure(
            "api",
            "cycle",
            connections,
            lambda: run_wrk(
                url, script, args, connections=connections, seconds=seconds, timeout=30
            ),
        )
        wal = asyncio.run(self._wal_after(before))
        return _per_unit(run, wal)

    def _approve_window(self, ids: list[str], connections: int) -> dict[str, Any]:
        path = self.workdir / f"sizes-approve-{len(ids)}-{time.monotonic_ns()}.txt"
        path.write_text("".join(f"{i}\n" for i in ids))
        args = [str(path), str(connections), "api", self.requester["api_key"]]
        before = asyncio.run(self._wal_before())
        run = self.meter.measure(
            "api",
            "approve",
            connections,
            lambda: self._approve_and_drain(self.stack.urls["tasks"], args),
        )
        wal = asyncio.run(self._wal_after(before))
        return _per_unit(run, wal)

    async def _wal_before(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            return await _wal_position(conn)
        finally:
            await conn.close()

    async def _wal_after(self, before: dict[str, Any]) -> dict[str, int]:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            return await _wal_delta(conn, before)
        finally:
            await conn.close()

    async def _checkpoint(self) -> str:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            await conn.execute("CHECKPOINT")
            return await conn.fetchval("SHOW full_page_writes")
        finally:
            await conn.close()

    def measure(self, seconds: int, connections: int) -> dict[str, Any]:
        full_page_writes = asyncio.run(self._checkpoint())
        cycle = self._cycle_window(seconds, connections)
        ids = asyncio.run(self._submitted("api"))
        approve = self._approve_window(ids, connections)
        self.say(
            f"full_page_writes={full_page_writes}: {cycle['wal_bytes_per_unit']:.0f} WAL bytes "
            f"per cycle, {approve['wal_bytes_per_unit']:.0f} per approval (payout included)"
        )
        return {"full_page_writes": full_page_writes, "cycle": cycle, "approve": approve}


def _per_unit(run: Any, wal: dict[str, int]) -> dict[str, Any]:
    units = run.units
    cpu = run.cpu_seconds
    return {
        "units": units,
        "seconds": round(run.wall_seconds, 3),
        "per_second": round(units / run.wall_seconds, 1),
        "failed": run.failed,
        "wal": wal,
        "wal_bytes_per_unit": wal["lsn_bytes"] / units if units else None,
        "full_page_images_per_unit": wal["full_page_images"] / units if units else None,
        "cpu_ms_per_unit": {
            k: round(v * 1000 / units, 3) for k, v in cpu.items() if units and k != "machine"
        },
    }


async def _sizes(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        as_written = await table_sizes(conn)
        for name in ANSWER_TABLES:
            await conn.execute(f'VACUUM FULL ANALYZE "{name}"')
        compact = await table_sizes(conn)
        legs = await conn.fetchval(
            """
            SELECT count(*)::float / greatest(count(DISTINCT t.id), 1)
            FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
            WHERE t.kind = 'payout'
            """
        )
    finally:
        await conn.close()
    return {"as_written": as_written, "compact": compact, "legs_per_payout": legs}


async def run_sizes(seconds: int, connections: int, stack: Any, say: Any) -> dict[str, Any]:
    config = replace(
        PROFILES["full"], concurrencies=(connections,), seconds=seconds, rounds=1, warmup_seconds=0
    )
    bench = SizesBench(config, stack, say)
    try:
        await bench.seed()
        windows = await asyncio.to_thread(bench.measure, seconds, connections)
    finally:
        await bench.close()
    sizes = await _sizes(stack.database_url)
    conn = await asyncpg.connect(stack.database_url)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "machine": machine_description(version),
        "seconds": seconds,
        "connections": connections,
        "windows": windows,
        "sizes": sizes,
        "per_answer": per_answer(sizes["compact"], sizes["as_written"], sizes["legs_per_payout"]),
    }


def per_answer(
    compact: dict[str, Any], as_written: dict[str, Any], legs_per_payout: float
) -> dict[str, Any]:
    """Bytes one approved answer leaves behind: its task (one slot per task here), its
    assignment, its outbox row, its payout's ledger transaction and that payout's entries
    (`legs_per_payout`, measured)."""
    shares = {
        "tasks": 1.0,
        "assignments": 1.0,
        "outbox": 1.0,
        "ledger_transactions": 1.0,
        "ledger_entries": legs_per_payout,
    }
    out: dict[str, Any] = {}
    for label, sizes in (("compact", compact), ("as_written", as_written)):
        parts = {
            name: round((sizes.get(name, {}).get("bytes_per_row") or 0.0) * share, 1)
            for name, share in shares.items()
        }
        out[label] = {"bytes": round(sum(parts.values())), "parts": parts}
    out["legs_per_payout"] = legs_per_payout
    return out


def _rows(sizes: dict[str, Any], name: str) -> int:
    return int(sizes.get(name, {}).get("rows") or 0)


def format_report(payload: dict[str, Any]) -> str:
    lines = ["table                 rows   bytes/row compact  bytes/row as written"]
    compact, written = payload["sizes"]["compact"], payload["sizes"]["as_written"]
    for name in ANSWER_TABLES:
        c, w = compact.get(name, {}), written.get(name, {})
        lines.append(
            f"{name:<20} {c.get('rows', 0):>7,}   {c.get('bytes_per_row') or 0:>16,.0f}"
            f"   {w.get('bytes_per_row') or 0:>19,.0f}"
        )
    window = payload["windows"]
    for phase in ("cycle", "approve"):
        w = window[phase]
        cpu = w["cpu_ms_per_unit"]
        lines.append(
            f"full_page_writes={window['full_page_writes']}, {phase}: {w['units']:,.0f} at "
            f"{w['per_second']:,.0f}/s, "
            f"WAL {w['wal_bytes_per_unit']:,.0f} B/unit "
            f"({w['full_page_images_per_unit']:.2f} full-page images), Postgres CPU "
            f"{cpu.get('postgres', 0):.3f} ms/unit, tasks {cpu.get('tasks', 0):.3f}, "
            f"payments {cpu.get('payments', 0):.3f}"
        )
    for label in ("compact", "as_written"):
        answer = payload["per_answer"][label]
        lines.append(f"bytes per approved answer ({label}): {answer['bytes']:,} {answer['parts']}")
    lines.append(f"ledger entries per payout: {payload['per_answer']['legs_per_payout']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.run import DEFAULT_POOL_SIZE, add_reference
    from bench.stack import local_stack

    parser = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk phase")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--json", type=Path, help="where to write the JSON report")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def say(line: str) -> None:
        print(f"sizes: {line}", file=sys.stderr, flush=True)

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    try:
        wrk_binary()
    except WrkMissing as exc:
        say(str(exc))
        return 2
    with local_stack(tasks_workers=1, pool_size=None, keep_database=args.keep_db) as (
        stack,
        group,
    ):
        # The seeding of bench.wrkbench writes a project for the reference too; the app is
        # started so that seeding stays the same code, and is otherwise idle here.
        add_reference(stack, group, workers=1, pool_size=DEFAULT_POOL_SIZE)
        payload = asyncio.run(run_sizes(args.seconds, args.connections, stack, say))
    path = args.json or RESULTS_DIR / f"sizes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, payload)
    print(format_report(payload))
    print(f"JSON: {path}")
    print(json.dumps(payload["per_answer"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
