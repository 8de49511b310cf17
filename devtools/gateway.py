"""The nginx gateway: one template (docker/nginx.conf.template), rendered for compose (the
committed docker/nginx.conf) and for N local replicas per service (`manage.py run --replicas N`,
tests/gateway/), plus what it takes to run it as a local process.

    python3 -m devtools.gateway          rewrite docker/nginx.conf from the template
    python3 -m devtools.gateway --check  exit 1 if docker/nginx.conf is not what it renders

Local replicas: replica i of each service listens on its own port and calls replica i of each
peer directly (services reach each other's /internal/* routes, which the public gateway never
routes); nginx listens on the public ports and spreads the public API over the replicas
(docs/architecture.md, "The gateway").
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "nginx.conf.template"
COMPOSE_CONF = ROOT / "docker" / "nginx.conf"
SERVICES = ("tasks", "workers", "payments")
COMPOSE_LISTEN = ("8080",)
COMPOSE_UPSTREAMS = {
    "tasks": ["tasks:8001"],
    "workers": ["workers:8002"],
    "payments": ["payments:8003"],
}
GENERATED_HEADER = (
    "# GENERATED from docker/nginx.conf.template by `python3 -m devtools.gateway`: edit the\n"
    "# template, then re-run it. docker-compose.yml mounts this file as /etc/nginx/nginx.conf.\n"
)
INSTALL_HINT = (
    "nginx is not installed: `sudo apt-get install nginx` (Debian/Ubuntu; .ci/run installs it "
    "in CI) or put an nginx binary on PATH"
)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(
    *,
    listen: Sequence[str],
    upstreams: Mapping[str, Sequence[str]],
    http: Sequence[str] = (),
) -> str:
    """The template with its placeholders filled: `listen` addresses ("8080",
    "127.0.0.1:8001"), each service's upstream servers ("host:port"), and extra directives
    for the http context (a local run's temp paths). A placeholder whose value is empty
    disappears with its line."""
    missing = [svc for svc in SERVICES if not upstreams.get(svc)]
    if missing:
        raise ValueError(f"no upstream servers for {missing}")
    values = {
        "http": [f"    {line}" for line in http],
        "listen": [f"        listen {address};" for address in listen],
        **{
            f"{svc}_servers": [f"        server {server};" for server in upstreams[svc]]
            for svc in SERVICES
        },
    }
    out = []
    for line in TEMPLATE.read_text().splitlines():
        match = _PLACEHOLDER.fullmatch(line.strip())
        if match:
            out.extend(values.pop(match.group(1)))
            continue
        if _PLACEHOLDER.search(line) and not line.lstrip().startswith("#"):
            raise ValueError(f"a placeholder must stand alone on its line: {line!r}")
        out.append(line)
    if values:
        raise ValueError(f"template lacks placeholders {sorted(values)}")
    return GENERATED_HEADER + "\n".join(out) + "\n"


def compose_config() -> str:
    """What docker/nginx.conf must hold: one server per service, by compose name."""
    return render(listen=COMPOSE_LISTEN, upstreams=COMPOSE_UPSTREAMS)


# --------------------------------------------------------------------------- local replicas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Replica:
    service: str
    index: int  # 0-based
    port: int

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index + 1}"


def replica_layout(n: int, ports: Sequence[int] | None = None) -> dict[str, list[Replica]]:
    """N replicas of each service on free ports (or on `ports`, 3N of them, in service order)."""
    if n < 1:
        raise ValueError("at least one replica per service")
    chosen = list(ports) if ports is not None else [free_port() for _ in range(3 * n)]
    if len(chosen) != 3 * n:
        raise ValueError(f"need {3 * n} ports, got {len(chosen)}")
    it = iter(chosen)
    return {svc: [Replica(svc, i, next(it)) for i in range(n)] for svc in SERVICES}


def replica_env(
    base: Mapping[str, str], replica: Replica, layout: Mapping[str, Sequence[Replica]], host: str
) -> dict[str, str]:
    """`base` (every service's settings) with this replica's peers: replica i calls replica i
    of each peer (mod N), directly; and X-Forwarded-For believed from the local gateway."""
    env = dict(base)
    prefix = replica.service.upper()
    for peer, replicas in layout.items():
        target = replicas[replica.index % len(replicas)]
        env[f"{prefix}_{peer.upper()}_URL"] = f"http://{host}:{target.port}"
    env[f"{prefix}_FORWARDED_ALLOW_IPS"] = "127.0.0.1/32"
    return env


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class LocalGateway:
    """nginx as a foreground child process, rendered from the template into `workdir` (its
    config, pid file, temp directories and log)."""

    def __init__(
        self,
        workdir: Path,
        *,
        listen: Sequence[str],
        layout: Mapping[str, Sequence[Replica]],
        host: str = "127.0.0.1",
    ) -> None:
        self.nginx = find_nginx()  # None: the config renders, nothing runs (INSTALL_HINT)
        self.workdir = workdir
        self.listen = list(listen)
        self.host = host
        self.upstreams = {
            svc: [f"{host}:{r.port}" for r in replicas] for svc, replicas in layout.items()
        }
        self.conf_path = workdir / "nginx.conf"
        self.log_path = workdir / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        temp = self.workdir / "temp"
        http = [
            f'{kind}_temp_path "{temp / kind}";'
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ]
        return render(listen=self.listen, upstreams=self.upstreams, http=http)

    def argv(self) -> list[str]:
        """Foreground, its pid file here; as root, workers keep the user that started it
        (nginx would switch to an account that may not read this directory)."""
        if self.nginx is None:
            raise FileNotFoundError(INSTALL_HINT)
        globals_ = f'daemon off; pid "{self.workdir / "nginx.pid"}";'
        if os.geteuid() == 0:
            globals_ += " user root;"
        return [
            self.nginx,
            "-p",
            str(self.workdir),
            "-e",
            "stderr",
            "-c",
            str(self.conf_path),
            "-g",
            globals_,
        ]

    def write(self) -> None:
        (self.workdir / "temp").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config())
        test = subprocess.run([*self.argv(), "-t"], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t refused {self.conf_path}:\n{test.stderr}")

    def start(self) -> subprocess.Popen[bytes]:
        self.write()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self.proc

    def wait_ready(self, url: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nginx not answering on {url}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def main(argv: list[str]) -> int:
    rendered = compose_config()
    if "--check" in argv:
        if COMPOSE_CONF.read_text() != rendered:
            print(f"{COMPOSE_CONF} is stale: run python3 -m devtools.gateway", file=sys.stderr)
            return 1
        return 0
    COMPOSE_CONF.write_text(rendered)
    print(f"wrote {COMPOSE_CONF}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
