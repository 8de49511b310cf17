"""The `manage.py` commands; runs inside the project venv (manage.py guarantees that).

    run      embedded Postgres (unless DATABASE_URL is set) + migrations + the three services;
             `run --replicas N`: N processes of each service behind nginx on the public ports
    test     pytest with the given arguments (tests start their own embedded Postgres)
    migrate  alembic upgrade head against the same database `run` would use
    psql     an interactive psql on that database
    demo     the whole marketplace story over the public HTTP API (needs `run` going)
    bench    the benchmark suite on its own embedded Postgres (bench/RESULTS.md)

Environment: DATABASE_URL, PG_PORT, HOST, TASKS_PORT, WORKERS_PORT, PAYMENTS_PORT, INTERNAL_TOKEN.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devtools.embedded_pg import EmbeddedPostgres
    from devtools.gateway import LocalGateway

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
DB_NAME = "marketplace"
SERVICES: dict[str, int] = {"tasks": 8001, "workers": 8002, "payments": 8003}
"""Service name -> default port; env `<NAME>_PORT` overrides (docs/architecture.md)."""

HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class ProcessSpec:
    """A long-running process `run` supervises next to the services.

    `argv` are arguments to the venv's python (e.g. ["-m", "services.tasks.timers"]), or to
    `program` when one is given (nginx); it gets the same environment as the services, plus
    `env`. With `health_url`, `run` waits for it to answer 200.
    """

    name: str
    argv: list[str]
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    program: str | None = None


EXTRA_PROCESSES: list[ProcessSpec] = []
"""Extra processes for `run` (the timer runner goes here once it exists)."""


# --------------------------------------------------------------------------- database choice


@dataclass
class Database:
    """The database `run`/`migrate`/`psql` use, and whether we must stop Postgres afterwards."""

    url: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False

    def close(self) -> None:
        if self.embedded is not None and self.started_here:
            print("stopping embedded Postgres", file=sys.stderr, flush=True)
            self.embedded.stop()


def open_database() -> Database:
    """DATABASE_URL when set; else the embedded server in .data/postgres with DB `marketplace`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return Database(url=url)
    from devtools.embedded_pg import EmbeddedPostgres

    pg = EmbeddedPostgres(DATA / "postgres", port=int(os.environ.get("PG_PORT") or 0))
    was_running = pg.is_running()
    pg.start()
    if pg.create_database(DB_NAME):
        print(f"created database {DB_NAME}", file=sys.stderr)
    return Database(url=pg.dsn(DB_NAME), embedded=pg, started_here=not was_running)


def alembic_argv() -> list[str]:
    """`alembic upgrade head`, with -c when the ini lives in migrations/ instead of the root."""
    argv = [sys.executable, "-m", "alembic"]
    if not (ROOT / "alembic.ini").exists() and (ROOT / "migrations" / "alembic.ini").exists():
        argv += ["-c", str(ROOT / "migrations" / "alembic.ini")]
    return [*argv, "upgrade", "head"]


def migrate(url: str) -> int:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(alembic_argv(), cwd=ROOT, env=env, check=False).returncode


# --------------------------------------------------------------------------- run


def internal_token() -> str:
    """INTERNAL_TOKEN, else one generated on first run and kept in .data/ (stable across runs)."""
    token = os.environ.get("INTERNAL_TOKEN")
    if token:
        return token
    path = DATA / "internal_token"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def service_ports() -> dict[str, int]:
    return {
        name: int(os.environ.get(f"{name.upper()}_PORT") or default)
        for name, default in SERVICES.items()
    }


def service_env(db_url: str, host: str, ports: dict[str, int]) -> dict[str, str]:
    """The environment for every process: each service's prefixed settings (and the rest)."""
    peer_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    urls = {name: f"http://{peer_host}:{port}" for name, port in ports.items()}
    env = dict(os.environ)
    for prefix in (name.upper() for name in SERVICES):
        env[f"{prefix}_DATABASE_URL"] = db_url
        env[f"{prefix}_INTERNAL_TOKEN"] = internal_token()
        for peer, url in urls.items():
            env[f"{prefix}_{peer.upper()}_URL"] = url
    return env


def uvicorn_argv(service: str, host: str, port: int) -> list[str]:
    return [
        "-m",
        "uvicorn",
        "--factory",
        f"services.{service}.app:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        # Forwarded headers are judged by the app alone (*_FORWARDED_ALLOW_IPS).
        "--no-proxy-headers",
        # Drain in-flight requests on SIGTERM, but not forever (the supervisor's
        # STOP_TIMEOUT SIGKILLs after 15 s).
        "--timeout-graceful-shutdown",
        "10",
    ]


def service_specs(host: str, ports: dict[str, int]) -> list[ProcessSpec]:
    peer_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    specs = [
        ProcessSpec(
            name=name,
            argv=uvicorn_argv(name, host, port),
            health_url=f"http://{peer_host}:{port}/healthz",
        )
        for name, port in ports.items()
    ]
    return [*specs, *EXTRA_PROCESSES]


def replica_specs(
    host: str, ports: dict[str, int], replicas: int, env: dict[str, str], workdir: Path
) -> tuple[list[ProcessSpec], LocalGateway]:
    """`replicas` uvicorn processes per service on free local ports, and nginx on the public
    ports in front of them (devtools.gateway: the compose gateway's template). Replica i calls
    replica i of each peer directly; only nginx listens on `host`."""
    from devtools.gateway import LocalGateway, replica_env, replica_layout

    layout = replica_layout(replicas)
    specs = []
    for group in layout.values():
        for replica in group:
            own = replica_env(env, replica, layout, "127.0.0.1")
            specs.append(
                ProcessSpec(
                    name=replica.name,
                    argv=uvicorn_argv(replica.service, "127.0.0.1", replica.port),
                    health_url=f"http://127.0.0.1:{replica.port}/healthz",
                    env={k: v for k, v in own.items() if env.get(k) != v},
                )
            )
    gateway = LocalGateway(
        workdir, listen=[f"{host}:{port}" for port in ports.values()], layout=layout
    )
    gateway.write()
    peer_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    specs.append(
        ProcessSpec(
            name="nginx",
            argv=gateway.argv()[1:],
            program=gateway.argv()[0],
            health_url=f"http://{peer_host}:{next(iter(ports.values()))}/healthz",
        )
    )
    return [*specs, *EXTRA_PROCESSES], gateway


class Stop(Exception):
    """Raised by our SIGINT/SIGTERM handler so `run` unwinds through every `finally`.

    Installed explicitly: a shell starts background jobs with SIGINT ignored, and Python then
    would not turn Ctrl-C into KeyboardInterrupt.
    """


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def supervised(
    specs: list[ProcessSpec], env: dict[str, str]
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start every process; on exit SIGTERM them all, wait STOP_TIMEOUT, then SIGKILL.

    Each child gets its own session so a terminal Ctrl-C reaches only us, and shutdown order
    and timing stay ours (no double signals).
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        for spec in specs:
            procs[spec.name] = subprocess.Popen(
                [spec.program or sys.executable, *spec.argv],
                cwd=ROOT,
                env={**env, **spec.env},
                start_new_session=True,
            )
        yield procs
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {STOP_TIMEOUT:.0f}s: SIGKILL", file=sys.stderr)
                proc.kill()
                proc.wait()
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False


def _dead(procs: dict[str, subprocess.Popen[bytes]]) -> str | None:
    for name, proc in procs.items():
        if proc.poll() is not None:
            return f"{name} exited with code {proc.returncode}"
    return None


def wait_healthy(specs: list[ProcessSpec], procs: dict[str, subprocess.Popen[bytes]]) -> str | None:
    """Wait for each health URL; returns an error message if a process dies or time runs out."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    pending = [spec for spec in specs if spec.health_url]
    while pending:
        if problem := _dead(procs):
            return problem
        pending = [spec for spec in pending if not _healthy(spec.health_url or "")]
        if pending and time.monotonic() > deadline:
            return f"not healthy after {HEALTH_TIMEOUT:.0f}s: {', '.join(s.name for s in pending)}"
        if pending:
            time.sleep(0.2)
    return None


def _replicas_argument(args: list[str]) -> int | None:
    """`--replicas N` (or `--replicas=N`); None when absent. Raises ValueError on bad input."""
    for i, arg in enumerate(args):
        if arg == "--replicas":
            if i + 1 >= len(args):
                raise ValueError("--replicas needs a number")
            value = args[i + 1]
        elif arg.startswith("--replicas="):
            value = arg.split("=", 1)[1]
        else:
            raise ValueError(f"unknown argument {arg!r}")
        n = int(value)
        if n < 1:
            raise ValueError("--replicas must be at least 1")
        return n
    return None


def cmd_run(args: list[str]) -> int:
    try:
        replicas = _replicas_argument(args)
    except ValueError as exc:
        print(f"run: {exc} (usage: manage.py run [--replicas N])", file=sys.stderr)
        return 2
    host = os.environ.get("HOST") or "127.0.0.1"
    ports = service_ports()
    gateway = None
    gateway_dir: Path | None = None
    if replicas is not None:
        from devtools.gateway import INSTALL_HINT, find_nginx

        if find_nginx() is None:
            print(f"run --replicas: {INSTALL_HINT}", file=sys.stderr)
            return 1
    db = open_database()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if (code := migrate(db.url)) != 0:
            print(f"migrations failed (exit {code})", file=sys.stderr)
            return code
        env = service_env(db.url, host, ports)
        if replicas is None:
            specs = service_specs(host, ports)
        else:
            gateway_dir = Path(tempfile.mkdtemp(prefix="marketplace-gateway-"))
            specs, gateway = replica_specs(host, ports, replicas, env, gateway_dir)
        with supervised(specs, env) as procs:
            if problem := wait_healthy(specs, procs):
                print(f"startup failed: {problem}", file=sys.stderr)
                return 1
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            print("\nready:", flush=True)
            if gateway is None:
                for name, port in ports.items():
                    print(f"  {name:<9} http://{shown}:{port}   docs http://{shown}:{port}/docs")
            else:
                for name, port in ports.items():
                    print(f"  {name:<9} http://{shown}:{port}   (nginx: the whole public API)")
                for group in gateway.upstreams.values():
                    for server in group:
                        print(f"    replica http://{server}   (its /docs and /internal/*)")
                print(f"  gateway   {gateway.conf_path}")
                first = {svc: servers[0] for svc, servers in gateway.upstreams.items()}
                print(
                    "  demo      python3 manage.py demo"
                    f" --tasks-internal-url http://{first['tasks']}"
                    f" --payments-internal-url http://{first['payments']}"
                )
            print(
                f"  mturk     http://{shown}:{ports['tasks']}/mturk"
                "   (boto3 client('mturk', endpoint_url=...): docs/mturk.md)"
            )
            print(f"  database  {db.url}\n(Ctrl-C to stop)", flush=True)
            while not (problem := _dead(procs)):
                time.sleep(0.5)
            print(f"stopping everything: {problem}", file=sys.stderr)
            return 1
    except (KeyboardInterrupt, Stop):
        print("\nshutting down", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if gateway_dir is not None:
            shutil.rmtree(gateway_dir, ignore_errors=True)
        db.close()


# --------------------------------------------------------------------------- other commands


TEST_PROCESSES = 2
"""pytest-xdist workers of `manage.py test` (and so of CI): the suite waits on Postgres and HTTP
more than it computes, so two processes on the 2-core machines took it from ~170 s to ~125 s.
More would not fit the embedded server's 300 connections (each worker runs the three apps and,
for some tests, the three services as processes). `-n 0` runs it in one process."""


def cmd_test(args: list[str]) -> int:
    """pytest in the venv, on TEST_PROCESSES workers unless the arguments say `-n`;
    tests/conftest.py starts one embedded Postgres for all of them when DATABASE_URL is unset."""
    os.chdir(ROOT)
    given = any(
        a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in args
    )
    # loadscope: a module's tests run in one process, so a module's session-scoped stack (the
    # two replicas of each service behind nginx, tests/gateway/test_replicas.py) starts once
    # per run, not once per worker. (loadgroup would do it per mark, but pytest-xdist 3.8 cannot
    # rename pytest 9's node ids, so its groups are silently ignored.)
    workers = [] if given else ["-n", str(TEST_PROCESSES), "--dist", "loadscope"]
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *workers, *args])
    return 1  # unreachable: execv replaces this process


def cmd_migrate(_args: list[str]) -> int:
    db = open_database()
    try:
        return migrate(db.url)
    finally:
        db.close()


def cmd_psql(args: list[str]) -> int:
    from devtools.embedded_pg import bin_dir

    db = open_database()
    try:
        argv = [str(bin_dir() / "psql"), db.url, *args]
        with contextlib.suppress(KeyboardInterrupt):
            return subprocess.run(argv, check=False).returncode
        return 130
    finally:
        db.close()


def cmd_demo(args: list[str]) -> int:
    """Play the whole story against the running services (start them with `run` first)."""
    from devtools.demo import main as demo_main

    return demo_main(args)


def cmd_bench(args: list[str]) -> int:
    """Start a private stack on an embedded Postgres and print the benchmark figures."""
    from bench.run import main as bench_main

    return bench_main(args)


COMMANDS = {
    "run": cmd_run,
    "test": cmd_test,
    "migrate": cmd_migrate,
    "psql": cmd_psql,
    "demo": cmd_demo,
    "bench": cmd_bench,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        print(f"usage: python3 manage.py {{{','.join(COMMANDS)}}} [args...]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    return COMMANDS[argv[0]](argv[1:])
