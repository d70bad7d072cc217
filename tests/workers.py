"""Real worker processes for tests that kill them: `etl.testing.workers`, started from this project's
root (so `python -m workers.*` finds this tree's workers)."""

from __future__ import annotations

from pathlib import Path

from etl.testing.workers import WorkerProcess as _WorkerProcess
from etl.testing.workers import settings_env  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess(_WorkerProcess):
    def __init__(self, *args, cwd: Path | None = ROOT, **kwargs):
        super().__init__(*args, cwd=cwd, **kwargs)
