"""The soak's private stack: PostgreSQL and a Temporal dev server on free ports, the GitHub and
Launchpad fixtures on loopback, and a fleet of worker processes (the dev stack's own, so
`scripts/deploy.py` rolls them out) kept at strength by a supervisor, as a process manager would.

The supervisor restarts the workers of every wanted build that died (a kill, a drain); a deploy
adds its new build to the wanted ones and the old build leaves them once it has drained. Every
tick it also samples each worker's resident set size against the MEMORY_LIMIT_MIB it started with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from etl.core.settings import PROJECT_ROOT, Settings, settings_from_env
from etl.devstack.local import DevStack
from etl.devstack.servers import EmbeddedPostgres, TemporalDevServer, private_stack
from etl.devstack.version_workers import version_env
from sources.github.fixture.server import GitHubFixture
from sources.launchpad.fixture.server import FixtureService

DEPLOYMENT = "etl"
WORKER_MEMORY_MIB = 400
EVENTS_TABLE = "soak_events"


@dataclass
class Peak:
    """The largest RSS seen of one worker process, and the limit it was started with."""

    kind: str
    build_id: str
    limit_mib: int
    rss_mib: float = 0.0


@dataclass
class Fleet:
    """The workers: `count` of each kind per wanted build, restarted when they die."""

    stack: DevStack
    count: int
    wanted: list[str] = field(default_factory=list)
    peaks: dict[int, Peak] = field(default_factory=dict)
    restarted: int = 0
    paused: bool = False
    """While True the supervisor starts nothing (PostgreSQL or Temporal is being restarted by hand)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def supervise(self) -> int:
        """Start the missing workers of every wanted build; sample RSS. Returns how many started."""
        started = 0
        with self._lock:
            if not self.paused:
                for build_id in list(self.wanted):
                    started += len(self.stack.start_workers(self.count, version_env(DEPLOYMENT, build_id)))
        self.restarted += started
        self.sample()
        return started

    def sample(self) -> None:
        for proc in _fleet_processes(self.stack):
            try:
                env = proc.environ()
                rss = proc.memory_info().rss / 2**20
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            kind = "streaming_worker" if "workers.streaming_worker" in proc.cmdline() else "etl_worker"
            peak = self.peaks.setdefault(proc.pid, Peak(kind, env.get("WORKER_BUILD_ID", ""),
                                                        int(env.get("MEMORY_LIMIT_MIB", WORKER_MEMORY_MIB))))
            peak.rss_mib = max(peak.rss_mib, rss)

    def pids(self, build_id: str | None = None) -> list[int]:
        return sorted(w.pid for w in self.stack.workers() if build_id is None or w.build_id == build_id)


def _fleet_processes(stack: DevStack) -> list[psutil.Process]:
    """The stack's workers and the starved ones the soak starts beside them (same state dir)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if not any(c.startswith("workers.") for c in cmdline):
            continue
        try:
            if proc.environ().get("ETL_STATE_DIR") == str(stack.state):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class SoakStack:
    """Everything the soak runs on; a context manager that stops all of it on the way out."""

    def __init__(self, root: Path, seed: int, workers: int):
        self.root = root
        self.seed = seed
        self.workers = workers
        self._exit = ExitStack()
        self.pg: EmbeddedPostgres
        self.temporal: TemporalDevServer
        self.settings: Settings
        self.fleet: Fleet
        self.github: GitHubFixture
        self.launchpad: FixtureService

    def __enter__(self) -> "SoakStack":
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def _start(self) -> None:
        self.pg, self.temporal, env = self._exit.enter_context(private_stack(self.root))
        # A crash of PostgreSQL must not lose what it acknowledged (tests/reliability/test_restarts.py).
        self.pg.psql(f"ALTER DATABASE {self.pg.database} SET synchronous_commit = on")
        self.github = self._exit.enter_context(GitHubFixture(seed=self.seed))
        self.launchpad = FixtureService(seed=self.seed)
        self.launchpad.start()
        self._exit.callback(self.launchpad.stop)
        env.update({"EVENTS_TABLE": EVENTS_TABLE, "MEMORY_LIMIT_MIB": str(WORKER_MEMORY_MIB), "DB_MAX_CONN": "8",
                    "STAGING_SWEEP_S": "20", "GITHUB_API_URL": self.github.url.rstrip("/"),
                    "GITHUB_TOKEN": "soak-token", "WORKER_DEPLOYMENT_NAME": DEPLOYMENT})
        for name in ("ETL_TASK_QUEUE", "ETL_STREAMING_TASK_QUEUE", "WORKER_BUILD_ID", "HEALTH_PORT"):
            os.environ.pop(name, None)
        os.environ.update(env)  # the deploy command and every worker read their settings from here
        self.env = env
        self.settings = settings_from_env(os.environ)
        stack = DevStack(self.settings)
        self.fleet = Fleet(stack, self.workers, wanted=["soak-1"])
        self._exit.callback(self._stop_workers)
        self.fleet.supervise()
        problems = stack.wait_started([w for w in stack.workers()])
        if problems:
            raise RuntimeError("workers did not start: " + "; ".join(f"{k} {v}" for k, v in problems.items()))

    def _stop_workers(self) -> None:
        self.fleet.wanted.clear()
        for proc in _fleet_processes(self.fleet.stack):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(_fleet_processes(self.fleet.stack), timeout=30)

    def __exit__(self, *exc) -> None:
        self._exit.close()

    def starved_worker(self, build_id: str, limit_mib: int, log: Path) -> subprocess.Popen:
        """A streaming worker of `build_id` started with MEMORY_LIMIT_MIB `limit_mib`, outside the fleet's count."""
        env = dict(os.environ, **version_env(DEPLOYMENT, build_id), MEMORY_LIMIT_MIB=str(limit_mib))
        with open(log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "workers.streaming_worker"], cwd=PROJECT_ROOT, env=env,
                                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)

    def refuse_connections(self, refuse: bool) -> None:
        """The events database refuses (or takes again) new connections: a `reject` line for it in
        pg_hba.conf, reloaded; when refusing, its open connections are ended too, so every worker
        meets the refusal at its next reconnect. The `postgres` database stays reachable."""
        hba = self.pg.data_dir / "pg_hba.conf"
        line = f"host {self.pg.database} all 127.0.0.1/32 reject  # soak\n"
        text = hba.read_text().replace(line, "")
        hba.write_text(line + text if refuse else text)
        ended = ("; SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 f"WHERE datname = '{self.pg.database}' AND pid <> pg_backend_pid()") if refuse else ""
        subprocess.run([str(self.pg.bin_dir / "psql"), f"postgresql://{self.pg.user}@127.0.0.1:{self.pg.port}/postgres",
                        "-At", "-c", f"SELECT pg_reload_conf(){ended}"], check=True, capture_output=True)

    def kill_temporal(self, how: str) -> None:
        pid = self.temporal.pid()
        if pid is None:
            return
        if how == "SIGKILL":
            os.kill(pid, signal.SIGKILL)
            psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
        else:
            self.temporal.stop()
