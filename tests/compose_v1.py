"""The Compose v1 tool (`docker-compose`, from the PyPI package of that name) for the compose tests.

Its pinned dependencies (PyYAML<6, jsonschema<4, ...) clash with the project's, so it lives in a
venv of its own under `.etl/compose-v1/`, installed from the package index on first use (about
10 s) and reused as long as `tests/compose-v1-requirements.txt` and the Python version stay the
same. `render` runs `docker-compose config` on a compose file with a given env file: what v1
accepts, and everything it resolves (variables, env_file, anchors), without a Docker engine.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).with_name("compose-v1-requirements.txt")
HOME = ROOT / ".etl" / "compose-v1"

BUILD_TOOLS = ("setuptools==70.3.0", "wheel==0.43.0")
"""Installed first, so the source-only packages build without build isolation (see REQUIREMENTS)."""


class InstallError(RuntimeError):
    """The v1 tool could not be installed (no package index?); the message holds pip's output."""


def executable() -> Path:
    """The `docker-compose` v1 executable, installed on first use."""
    exe = HOME / "venv" / "bin" / "docker-compose"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + " ".join(BUILD_TOOLS).encode()
                            + sys.version.encode()).hexdigest()
    stamp = HOME / "installed"
    HOME.mkdir(parents=True, exist_ok=True)
    # Two test processes may ask at once; the second waits and then reuses the first's venv.
    with (HOME / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.is_file() and stamp.is_file() and stamp.read_text() == wanted:
            return exe
        stamp.unlink(missing_ok=True)
        shutil.rmtree(HOME / "venv", ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(HOME / "venv")])
        pip = [str(HOME / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check"]
        _run(pip + list(BUILD_TOOLS))
        _run(pip + ["--no-deps", "--no-build-isolation", "-r", str(REQUIREMENTS)])
        stamp.write_text(wanted)
    return exe


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise InstallError(f"`{' '.join(command)}` exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")


@dataclass(frozen=True)
class Rendered:
    """What `docker-compose config` answered: its exit code, the resolved file, its warnings."""

    returncode: int
    config: dict | None
    stderr: str


def render(env: Mapping[str, str], workdir: Path, compose_file: Path = ROOT / "docker-compose.yml") -> Rendered:
    """`docker-compose config` of `compose_file` with `env` as its env file (and the workers'
    env_file, through ETL_ENV_FILE), in an environment that holds nothing else."""
    env_file = workdir / "compose.env"
    values = {"ETL_ENV_FILE": str(env_file), **env}
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    done = subprocess.run(
        [str(executable()), "--project-directory", str(ROOT), "-f", str(compose_file),
         "--env-file", str(env_file), "config"],
        capture_output=True, text=True, timeout=120, cwd=workdir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8"})
    config = yaml.safe_load(done.stdout) if done.returncode == 0 else None
    return Rendered(done.returncode, config, done.stderr)
