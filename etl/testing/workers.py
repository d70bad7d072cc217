"""Real worker processes, for tests that kill them or run a fleet's Python: `python -m workers.*`
with the test's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from etl.core.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {
        "TEMPORAL_HOST": settings.temporal_host,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "DB_HOST": settings.db_host,
        "DB_PORT": str(settings.db_port),
        "DB_NAME": settings.db_name,
        "DB_USER": settings.db_user,
        "EVENTS_TABLE": settings.events_table,
        "ETL_STATE_DIR": str(settings.state_dir),
        "MEMORY_LIMIT_MIB": str(settings.memory_limit_mib),
    }
    env.update(settings.source_env())  # every source's settings, whatever the sources are
    if settings.encryption_key:
        env["ETL_ENCRYPTION_KEY"] = settings.encryption_key
    return env


class WorkerProcess:
    """One `python -m workers.<kind>` process polling `task_queue`; `python` is another environment's
    interpreter (a source package's venv), `cwd` where it starts (default: the current directory)."""

    def __init__(self, settings: Settings, task_queue: str, kind: str = "etl_worker", concurrency: int = 2,
                 log_path: Path | None = None, extra_env: dict[str, str] | None = None,
                 python: str | Path | None = None, cwd: Path | None = None):
        env = dict(os.environ, **settings_env(settings), **(extra_env or {}))
        env.pop("ETL_TASK_QUEUE", None)
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [str(python or sys.executable), "-m", f"workers.{kind}", "--task-queue", task_queue,
             "--concurrency", str(concurrency)],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if log_path:
            out.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; Temporal must notice through heartbeat timeouts."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
