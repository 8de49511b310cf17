"""The stack under test: an embedded Postgres, a fresh migrated database, the three services and
the reference app, each a real process, plus the sampler that watches their memory and CPU.

The bench either starts all of it (`LocalStack`, what `manage.py bench` does) or is handed a
running stack (`Stack` built by the CI smoke test from its fixtures); the reference app is part
of the bench and is always started here, on the same database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("tasks", "workers", "payments")
PG_DATA_DIR = ROOT / ".data" / "bench-postgres"
LOG_DIR = ROOT / ".data" / "bench-logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


@dataclass
class Stack:
    """Where everything runs: base URLs, the database, and the process ids to watch."""

    urls: dict[str, str]
    database_url: str
    internal_token: str
    pids: dict[str, int] = field(default_factory=dict)
    description: dict[str, str] = field(default_factory=dict)


def uvicorn_argv(app: str, port: int, *, workers: int = 1, factory: bool = True) -> list[str]:
    """uvicorn as deployed: uvloop + httptools come with uvicorn[standard] and are picked up
    automatically; access logs off (they cost ~10% of a tiny request)."""
    argv = [sys.executable, "-m", "uvicorn"]
    argv += ["--factory"] if factory else []
    argv += [app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    argv += ["--no-proxy-headers"]  # the app judges X-Forwarded-For (*_FORWARDED_ALLOW_IPS)
    argv += ["--loop", "uvloop", "--http", "httptools"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


def service_env(
    database_url: str, urls: dict[str, str], token: str, *, pool_size: int | None
) -> dict[str, str]:
    """Each service's prefixed settings (docs/architecture.md). Rate limits are lifted: the
    bench signs up hundreds of accounts from one address and drives single keys at thousands
    of requests a second, which the production limits exist to refuse."""
    env = dict(os.environ)
    for svc in SERVICES:
        prefix = svc.upper() + "_"
        env[prefix + "DATABASE_URL"] = database_url
        env[prefix + "INTERNAL_TOKEN"] = token
        env[prefix + "LOG_LEVEL"] = "WARNING"
        env[prefix + "RATE_LIMIT_SIGNUP"] = "10000000/minute"
        env[prefix + "RATE_LIMIT_PER_KEY"] = "10000000/minute"
        if pool_size is not None:
            env[prefix + "DB_POOL_SIZE"] = str(pool_size)
            env[prefix + "DB_DRIVER_POOL_SIZE"] = str(pool_size)
        for peer in SERVICES:
            env[prefix + peer.upper() + "_URL"] = urls[peer]
    return env


class ProcessGroup:
    """Child processes started by the bench, stopped by their own pids (never by name)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        return self.procs[name].pid

    def wait_healthy(self, name: str, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy after {timeout:.0f}s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(no log)"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def start_reference(
    group: ProcessGroup, database_url: str, *, workers: int, pool_size: int
) -> tuple[str, int]:
    """The minimal FastAPI + asyncpg app of bench/reference_app.py, deployed like the tasks
    service (same uvicorn flags and worker count, same connection budget per process)."""
    port = free_port()
    env = {
        **os.environ,
        "BENCH_REFERENCE_DATABASE_URL": database_url,
        "BENCH_REFERENCE_POOL_SIZE": str(pool_size),
    }
    argv = uvicorn_argv("bench.reference_app:create_app", port, workers=workers)
    pid = group.start("reference", argv, env)
    url = f"http://127.0.0.1:{port}"
    group.wait_healthy("reference", url)
    return url, pid


@contextlib.contextmanager
def local_stack(
    *,
    tasks_workers: int,
    pool_size: int | None,
    keep_database: bool = False,
    variants: tuple[str, ...] = (),
) -> Iterator[tuple[Stack, ProcessGroup]]:
    """Embedded Postgres in .data/bench-postgres, a fresh database, migrations, three services
    (with `variants`: the same services with measured proposals patched in, bench/variants.py)."""
    from devtools.embedded_pg import EmbeddedPostgres

    pg = EmbeddedPostgres(PG_DATA_DIR, fast=True)
    was_running = pg.is_running()
    admin_url = pg.start()
    db_name = f"bench_{int(time.time())}_{secrets.token_hex(3)}"
    pg.create_database(db_name)
    database_url = with_database(admin_url, db_name)
    log_dir = LOG_DIR / db_name
    group = ProcessGroup(log_dir)
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"alembic upgrade head failed:\n{migrated.stderr[-4000:]}")
        ports = {svc: free_port() for svc in SERVICES}
        urls = {svc: f"http://127.0.0.1:{port}" for svc, port in ports.items()}
        token = secrets.token_urlsafe(24)
        env = service_env(database_url, urls, token, pool_size=pool_size)
        env["BENCH_VARIANTS"] = ",".join(variants)
        pids: dict[str, int] = {}
        for svc in SERVICES:
            workers = tasks_workers if svc == "tasks" else 1
            app = (
                f"bench.variants:create_{svc}_app" if variants else f"services.{svc}.app:create_app"
            )
            argv = uvicorn_argv(app, ports[svc], workers=workers)
            pids[svc] = group.start(svc, argv, env)
        for svc in SERVICES:
            group.wait_healthy(svc, urls[svc])
        stack = Stack(
            urls=urls,
            database_url=database_url,
            internal_token=token,
            pids=pids,
            description={
                "postgres": "embedded (fsync=off), " + pg.run_sql("SHOW server_version").strip(),
                "logs": str(log_dir),
            },
        )
        yield stack, group
    finally:
        group.stop_all()
        if not keep_database:
            with contextlib.suppress(RuntimeError):
                pg.drop_database(db_name)
        if not was_running:
            pg.stop()


def process_tree(pid: int) -> list[psutil.Process]:
    """A uvicorn process and its workers (uvicorn --workers N forks N children)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_processes(database_url: str) -> list[psutil.Process]:
    """The postmaster listening on the database's port and all its backends and helpers."""
    port = int(database_url.rsplit(":", 1)[1].split("/", 1)[0])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid:
                return process_tree(conn.pid)
    return []


class ResourceSampler:
    """Samples every watched process tree's RSS (summed over the tree) every `interval` seconds
    in a thread, keeping the peak per name; CPU seconds are read on demand per phase.

    Once a second it also appends (time, machine busy CPU s, the bench's own CPU s) to
    `timeline` — the stack, Postgres and this process with its load-generator children — so a
    long phase can tell, window by window, a slowdown of ours from other people's load."""

    def __init__(self, pids: dict[str, int], database_url: str, interval: float = 0.2) -> None:
        self.pids = dict(pids)
        self.database_url = database_url
        self.interval = interval
        self.peak_rss: dict[str, int] = {name: 0 for name in pids}
        self.timeline: list[tuple[float, float, float]] = []
        self._postmaster: int | None = None
        with contextlib.suppress(psutil.Error, OSError, IndexError):
            self._postmaster = postgres_processes(database_url)[0].pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _ours_cpu(self) -> float:
        roots = [*self.pids.values(), os.getpid()]
        if self._postmaster is not None:
            roots.append(self._postmaster)
        total = 0.0
        for root in roots:
            for proc in process_tree(root):
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        return total

    def window_cores(self, start: float, end: float) -> tuple[float, float] | None:
        """(machine cores busy, bench cores) between two wall-clock times, from the timeline."""
        inside = [sample for sample in self.timeline if start <= sample[0] <= end]
        if len(inside) < 2:
            return None
        (t0, machine0, ours0), (t1, machine1, ours1) = inside[0], inside[-1]
        return (machine1 - machine0) / (t1 - t0), (ours1 - ours0) / (t1 - t0)

    def _loop(self) -> None:
        next_timeline = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_timeline:
                times = psutil.cpu_times()
                busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
                self.timeline.append((now, busy, self._ours_cpu()))
                next_timeline = now + 1.0
            for name, pid in self.pids.items():
                rss = 0
                for proc in process_tree(pid):
                    with contextlib.suppress(psutil.Error):
                        rss += proc.memory_info().rss
                if rss > self.peak_rss.get(name, 0):
                    self.peak_rss[name] = rss
            self._stop.wait(self.interval)

    def cpu_snapshot(self) -> dict[str, dict[tuple[int, float], float]]:
        """CPU seconds (user + system) of every process of each watched tree and of Postgres,
        keyed by (pid, start time) so that a phase counts only what was spent during it."""
        out: dict[str, dict[tuple[int, float], float]] = {}
        trees = {name: process_tree(pid) for name, pid in self.pids.items()}
        with contextlib.suppress(psutil.Error, OSError):
            trees["postgres"] = postgres_processes(self.database_url)
        for name, procs in trees.items():
            per_process: dict[tuple[int, float], float] = {}
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    per_process[(proc.pid, proc.create_time())] = times.user + times.system
            out[name] = per_process
        times = psutil.cpu_times()
        out["machine"] = {(0, 0.0): sum(times) - times.idle - getattr(times, "iowait", 0.0)}
        return out


def cpu_used(
    before: dict[str, dict[tuple[int, float], float]],
    after: dict[str, dict[tuple[int, float], float]],
) -> dict[str, float]:
    """CPU seconds per watched name between two snapshots (processes started in between count
    from zero; processes gone by the end are left out)."""
    used: dict[str, float] = {}
    for name, per_process in after.items():
        earlier = before.get(name, {})
        used[name] = sum(cpu - cpu_before(earlier, key) for key, cpu in per_process.items())
    return used


START_TIME_SLACK_SECONDS = 5.0
"""How far two readings of one process's start time may differ. psutil derives it from the boot
time in /proc/stat, which a virtual machine's clock adjustments move by a second now and then:
matched exactly, every process looked new after such a step and was charged its whole lifetime
(a heartbeat phase once showed 63 s of tasks CPU in 11 s)."""


def cpu_before(earlier: dict[tuple[int, float], float], key: tuple[int, float]) -> float:
    """The CPU seconds the earlier snapshot read for the process `key` names (pid, start time),
    or 0 for a process started since (a reused pid has a start time far from the old one)."""
    if key in earlier:
        return earlier[key]
    pid, started = key
    for (earlier_pid, earlier_started), cpu in earlier.items():
        if earlier_pid == pid and abs(earlier_started - started) <= START_TIME_SLACK_SECONDS:
            return cpu
    return 0.0
