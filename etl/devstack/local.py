"""The local stack `scripts/dev.py` manages: both servers, with their state under `.etl/`.

    .etl/postgres/          PostgreSQL data (server.log inside)
    .etl/temporal.db        Temporal's SQLite store: workflows survive restarts
    .etl/temporal.pid/.log  the dev server's process id and log
    .etl/workers/           pid and log files of workers started with `up --workers N`
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from etl.core.settings import PROJECT_ROOT, Settings
from etl.devstack.servers import (
    EmbeddedPostgres,
    TemporalDevServer,
    _pid_alive,
    port_answers,
)


@dataclass
class DevStack:
    settings: Settings

    @property
    def state(self) -> Path:
        return self.settings.state_dir

    @property
    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.state / "postgres", self.settings.db_port, user=self.settings.db_user,
                                database=self.settings.db_name)

    @property
    def temporal(self) -> TemporalDevServer:
        return TemporalDevServer(self.state / "temporal.db", self.settings.temporal_port,
                                 self.settings.temporal_ui_port, namespace=self.settings.temporal_namespace,
                                 log_file=self.state / "temporal.log", pid_file=self.state / "temporal.pid")

    def up(self, workers: int = 0) -> None:
        """Start what is not running (reusing what is) and wait until both answer."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.temporal.start()
        if workers:
            self.start_workers(workers)

    def down(self) -> None:
        """Stop exactly the processes `up` started; the data stays."""
        self.stop_workers()
        self.temporal.stop()
        self.postgres.stop()

    def status(self) -> dict:
        from etl.store.db import Database

        postgres_ok = False
        if port_answers(self.settings.db_port, self.settings.db_host):
            db = Database(self.settings)
            try:
                postgres_ok = db.health_check()
            finally:
                db.close()
        return {
            "temporal_address": self.settings.temporal_host,
            "ui_url": self.settings.ui_url,
            "database_url": self.settings.public_database_url(),
            "temporal_ok": self.temporal.running(),
            "postgres_ok": postgres_ok,
            "workers": len(self.worker_pids()),
        }

    # -- local worker fleet ----------------------------------------------------

    @property
    def workers_dir(self) -> Path:
        return self.state / "workers"

    def worker_pids(self) -> list[int]:
        pids = []
        for pidfile in sorted(self.workers_dir.glob("*.pid")):
            try:
                pid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            if _pid_alive(pid, "workers."):
                pids.append(pid)
            else:
                pidfile.unlink(missing_ok=True)
        return pids

    def start_workers(self, count: int) -> None:
        """Start `count` batch and `count` streaming worker processes beside the stack."""
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        for kind in ("etl_worker", "streaming_worker"):
            running = len(list(self.workers_dir.glob(f"{kind}-*.pid")))
            for n in range(running, count):
                log = open(self.workers_dir / f"{kind}-{n}.log", "ab")
                proc = subprocess.Popen([sys.executable, "-m", f"workers.{kind}"], cwd=PROJECT_ROOT,
                                        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
                log.close()
                (self.workers_dir / f"{kind}-{n}.pid").write_text(str(proc.pid))

    def stop_workers(self, timeout: float = 70) -> None:
        pids = self.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in pids:
            try:
                psutil.Process(pid).wait(max(0.1, deadline - time.monotonic()))
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
        for pidfile in self.workers_dir.glob("*.pid"):
            pidfile.unlink(missing_ok=True)
