#!/usr/bin/env python3
"""Entry point for developers and CI: `python3 manage.py run|test|migrate|psql`.

Run with the system python3: this file only uses the standard library until it has made sure
the project venv (.venv/) exists and has the project installed (`pip install -e '.[dev]'`,
repeated only when pyproject.toml changes), then re-executes itself inside that venv and hands
over to `devtools.cli`. So a fresh clone needs nothing but Python 3.11+ and PyPI.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
PYPROJECT = ROOT / "pyproject.toml"
STAMP = VENV / ".manage-installed"  # holds the sha256 of the pyproject.toml last installed


def _say(message: str) -> None:
    print(f"manage.py: {message}", file=sys.stderr, flush=True)


def _inside_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _pyproject_digest() -> str:
    return hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()


def _install_needed() -> bool:
    """Reinstall when pyproject.toml is newer than the stamp and its content really changed."""
    if not STAMP.exists():
        return True
    if PYPROJECT.stat().st_mtime <= STAMP.stat().st_mtime:
        return False
    if STAMP.read_text().strip() == _pyproject_digest():
        STAMP.touch()  # touched but unchanged (e.g. a checkout): skip the slow pip run
        return False
    return True


def _without_dependencies() -> list[str]:
    """pyproject's [tool.crowd-marketplace] install-without-dependencies: packages whose
    declared dependencies are heavier than what we import of them (their real runtime needs
    are in the project's own dependencies)."""
    import tomllib

    tool = tomllib.loads(PYPROJECT.read_text()).get("tool", {}).get("crowd-marketplace", {})
    return list(tool.get("install-without-dependencies", []))


def ensure_venv() -> None:
    """Create .venv and install the project into it when needed (under a lock: CI, terminals)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not VENV_PYTHON.exists():  # also a venv whose base python went away
            _say("creating .venv")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            STAMP.unlink(missing_ok=True)
        if _install_needed():
            _say("installing the project into .venv (pip install -e '.[dev]')")
            pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check"]
            quiet = ["-q"] if os.environ.get("CI") else []
            subprocess.run([*pip, "install", *quiet, "-e", ".[dev]"], check=True, cwd=ROOT)
            if extra := _without_dependencies():
                subprocess.run([*pip, "install", *quiet, "--no-deps", *extra], check=True)
            STAMP.write_text(_pyproject_digest() + "\n")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by any system python3
        _say(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
        return 2
    try:
        ensure_venv()
    except subprocess.CalledProcessError as exc:
        _say(f"setting up .venv failed: {exc}")
        return 1
    if not _inside_venv():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])
    sys.path.insert(0, str(ROOT))
    from devtools.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
