"""Helpers for the fleet tests: run the real scripts (as processes, or in a thread when a test
registers a source of its own), write flow files, and register test-only sources for one test.

Each test keeps its own events table and task queue (the `settings` and `task_queue` fixtures);
scripts see them through the environment, exactly as a user's shell would pass them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl.core.settings import PROJECT_ROOT, Settings


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def script_env(settings: Settings, task_queue: str) -> dict[str, str]:
    """The environment a user would set to point the scripts at this test's stack, table and queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "TEMPORAL_", "ETL_", "EVENTS_"))}
    env.update({
        "TEMPORAL_HOST": settings.temporal_host,
        "DB_HOST": settings.db_host,
        "DB_PORT": str(settings.db_port),
        "DB_NAME": settings.db_name,
        "DB_USER": settings.db_user,
        "EVENTS_TABLE": settings.events_table,
        "ETL_TASK_QUEUE": task_queue,
        "ETL_STREAMING_TASK_QUEUE": task_queue,
        "ETL_STATE_DIR": str(settings.state_dir),
    })
    return env


async def run_script(script: str, *args: str, env: dict[str, str], timeout: float = 180) -> Result:
    """Run `scripts/<script>` as its own process, as a user would, and wait for it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_ROOT / "scripts" / script), *args, cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Result(proc.returncode, out.decode(), err.decode())


async def run_main_in_thread(main, argv: list[str], env: dict[str, str], monkeypatch) -> Result:
    """Call a script's `main(argv)` in a thread of this process, so sources a test registered are
    visible to it; its output is captured and its environment set as for a process."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(argv)

    code = await asyncio.to_thread(call)
    return Result(code, out.getvalue(), err.getvalue())


def write_flows(path: Path, flows: list[dict]) -> Path:
    path.write_text(json.dumps(flows))
    return path


def synthetic_flows(n: int, count: int = 200, bad_rate: float = 0.05, first_seed: int = 100) -> list[dict]:
    return [{"strategy": "synthetic-events", "args": {"count": count, "seed": first_seed + i, "bad_rate": bad_rate}}
            for i in range(n)]


def load_script(name: str):
    """Import `scripts/<name>.py` as a module (scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name}", PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def broken_strategy():
    """`synthetic-broken`: a strategy that passes planning (its query is the synthetic one) and fails
    at run time with a non-retryable SourceError, registered for this test only."""
    from etl.core import extract
    from etl.core.errors import SourceError

    def extract_broken(query, cursor, settings):
        raise SourceError("synthetic-broken refuses every request (on purpose, for the fleet tests)", status=403)
        yield  # pragma: no cover - makes this a generator like every extract method

    extract.extract_method("synthetic-broken", query_type="synthetic")(extract_broken)
    yield "synthetic-broken"
    extract._STRATEGIES.pop("synthetic-broken", None)
