"""Carrying out a plan: a timestamped backup of every file before it changes, then the writes,
then a check, in a fresh interpreter, that the source imports and registers its names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from etl.scaffold.plan import Action, Finding


def backup_path(path: Path, now: datetime) -> Path:
    """`FILE.bak.YYYYmmdd-HHMMSS` (.gitignore ignores `*.bak.*`), numbered if that one exists."""
    base = path.with_name(f"{path.name}.bak.{now:%Y%m%d-%H%M%S}")
    candidate, n = base, 1
    while candidate.exists():
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


def write(action: Action, now: datetime) -> Path | None:
    """Do one action; returns the backup it made, if any."""
    backup = None
    if action.path.exists():
        backup = backup_path(action.path, now)
        shutil.copy2(action.path, backup)
    action.path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the file and renamed over it, so an interrupted run never leaves half a file.
    partial = action.path.with_name(f".{action.path.name}.new-{os.getpid()}")
    partial.write_text(action.content, encoding="utf-8")
    os.replace(partial, action.path)
    return backup


_VERIFY = """
import os, sys
sys.path[0:0] = sys.argv[1].split(os.pathsep)
from etl.core import discovery
from etl.core.extract import ExtractStrategy
from etl.core.query import QueryFactory
if sys.argv[2]:
    discovery.import_source(sys.argv[2])
if sys.argv[3]:
    QueryFactory.get(sys.argv[3])
for name in sys.argv[4:]:
    ExtractStrategy.create(name)
"""


def verify(root: Path, query_type: str | None, strategies: list[str], package: str | None = None) -> str | None:
    """Import every source as a worker would, in a fresh interpreter, and `package` (a source package at
    `root`, installed or not) first; None when `query_type` and `strategies` are registered, else the
    error. (In this process the old modules are cached.)"""
    # A package's folder first, then the framework this generator belongs to (the project's root).
    paths = [str(root)] + ([str(Path(__file__).resolve().parents[2])] if package else [])
    proc = subprocess.run([sys.executable, "-B", "-c", _VERIFY, os.pathsep.join(paths), package or "", query_type or "",
                           *strategies],
                          cwd=root, capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def env_example(root: Path) -> str | None:
    """What `root`'s `.env.example` should hold (every declared setting, with its default and help),
    computed in a fresh interpreter; None when there is no `.env.example` or the settings do not import."""
    if not (root / ".env.example").exists():
        return None
    proc = subprocess.run([sys.executable, "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "from etl.core.settings import env_example; sys.stdout.write(env_example())", str(root)],
                          cwd=root, capture_output=True, text=True, timeout=120)
    return proc.stdout if proc.returncode == 0 else None


def stale_env_example(root: Path) -> Finding | None:
    """A finding, with its repair, when `.env.example` no longer says what the settings declare (a
    setting added, removed, or its default or help changed) and `make test` would fail on it."""
    fresh = env_example(root)
    target = root / ".env.example"
    if fresh is None or fresh == target.read_text(encoding="utf-8"):
        return None
    return Finding(target, ["is stale: it does not list the settings as they are declared now (one was added, "
                            "removed, or its default or help changed)"],
                   Action("update", target, fresh, "it is generated from the settings, so it is written again"))


def refresh_env_example(root: Path) -> bool:
    """Regenerate `root`'s `.env.example` (every declared setting, the new source's included), so the
    user never edits it by hand. True when it changed."""
    fresh = env_example(root)
    target = root / ".env.example"
    if fresh is None or fresh == target.read_text(encoding="utf-8"):
        return False
    target.write_text(fresh, encoding="utf-8")
    return True
