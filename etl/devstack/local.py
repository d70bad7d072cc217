"""The local stack `scripts/dev.py` manages: both servers, with their state under `.etl/`.

    .etl/postgres/          PostgreSQL data (server.log inside)
    .etl/temporal.db        Temporal's SQLite store: workflows survive restarts
    .etl/temporal.pid/.log  the dev server's process id and log
    .etl/workers/           `<kind>-<n>.pid` and `.log` of workers started with `up --workers N`
                            (`.log.1`: the log of the previous worker with that number)

"Ours" means started from this state directory: the process in our pid file (or PostgreSQL's
`postmaster.pid`) is the one listening. Whatever else answers on a configured port (another
checkout's `dev.py up`, a test's private stack) is reported with its process, and left alone.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import psutil

from etl.core.errors import StackError
from etl.core.settings import PROJECT_ROOT, Settings
from etl.devstack.servers import (
    EmbeddedPostgres,
    TemporalDevServer,
    _pid_alive,
    port_answers,
)

WORKER_KINDS = ("etl_worker", "streaming_worker")

#: Set in the environment of every worker `up` starts: the state directory they belong to, so
#: `status` and `down` find them even if a pid file went missing.
WORKER_MARK = "ETL_DEVSTACK_STATE_DIR"


@dataclass
class PortOwner:
    """What answers on one of the stack's ports, and whether it is this stack's own server."""

    port: int
    answers: bool
    """The protocol answers: PostgreSQL runs a query, Temporal's health check says serving."""
    listening: bool
    """Something accepts TCP connections on the port."""
    ours: bool
    """The listener is the process this state directory started."""
    pid: int | None = None
    process: str = ""
    """The listener's command line (shortened), when this user may see it."""

    def describe(self) -> str:
        if not self.listening:
            return "down (nothing listens)"
        state = "answers" if self.answers else "listening, but not answering as expected"
        if self.ours:
            return f"{state} (ours, pid {self.pid})"
        who = f"pid {self.pid}: {self.process}" if self.pid else "a process this user cannot see"
        return f"{state}, NOT started from this state dir ({who}); `dev.py down` leaves it running"


def listener_pid(port: int) -> int | None:
    """The pid listening on TCP `port` (any address), or None when none is visible to this user."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def _command(pid: int) -> str:
    try:
        text = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    return text if len(text) <= 200 else text[:197] + "..."


def _listens(pid: int, port: int) -> bool | None:
    """Whether process `pid` (or a child of it: a server may fork) listens on TCP `port`; None
    when this user may not look (then its pid file and the port answering are all we know)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for p in procs for c in p.net_connections(kind="tcp"))
    except psutil.AccessDenied:
        return None
    except psutil.NoSuchProcess:
        return False


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

    def up(self, workers: int = 0, env: dict[str, str] | None = None) -> None:
        """Start what is not running (reusing what is) and wait until both answer; `env` goes to
        the workers (dev.py: their deployment name and build id)."""
        self.state.mkdir(parents=True, exist_ok=True)
        self._refuse_foreign(self.postgres_owner(), "PostgreSQL", "DB_PORT")
        self.postgres.start()
        self._refuse_foreign(self.temporal_owner(), "the Temporal server", "TEMPORAL_HOST")
        self.temporal.start()
        if workers:
            self.start_workers(workers, env)

    def _refuse_foreign(self, owner: PortOwner, what: str, setting: str) -> None:
        if owner.listening and not owner.ours:
            who = f"pid {owner.pid} ({owner.process})" if owner.pid else "a process this user cannot see"
            raise StackError(f"port {owner.port} for {what} is already taken by {who}, not started from "
                             f"{self.state}; stop it (`dev.py down` in its own checkout) or choose another "
                             f"port with {setting}")

    def down(self) -> None:
        """Stop exactly the processes `up` started; the data stays."""
        self.stop_workers()
        self.temporal.stop()
        self.postgres.stop()

    # -- who answers on each port ------------------------------------------------

    def postgres_owner(self) -> PortOwner:
        port = self.settings.db_port
        listening = port_answers(port, self.settings.db_host)
        answers = False
        if listening:
            from etl.store.db import Database

            db = Database(self.settings)
            try:
                answers = db.health_check()
            finally:
                db.close()
        return self._owner(port, listening, answers, self.postgres.pid() if _pid_alive(self.postgres.pid(),
                                                                                         "postgres") else None)

    def temporal_owner(self) -> PortOwner:
        port = self.settings.temporal_port
        host = self.settings.temporal_host.rsplit(":", 1)[0]
        listening = port_answers(port, host)
        answers = listening and asyncio.run(_temporal_serving(self.settings))
        recorded = self.temporal.pid()
        return self._owner(port, listening, answers, recorded if _pid_alive(recorded, "start-dev") else None)

    @staticmethod
    def _owner(port: int, listening: bool, answers: bool, recorded: int | None) -> PortOwner:
        ours = bool(listening and recorded and _listens(recorded, port) is not False)
        pid = recorded if ours else (listener_pid(port) if listening else None)
        return PortOwner(port, answers, listening, ours, pid, _command(pid) if pid else "")

    def status(self) -> dict:
        """Addresses, what answers on each port and whose it is, and the workers running.

        `temporal_ok` / `postgres_ok`: the server on the configured port answers (whoever started
        it); `temporal_ours` / `postgres_ours`: it is the one this state directory started."""
        temporal, postgres = self.temporal_owner(), self.postgres_owner()
        workers = self.live_workers()
        return {
            "temporal_address": self.settings.temporal_host,
            "ui_url": self.settings.ui_url,
            "database_url": self.settings.public_database_url(),
            "temporal_ok": temporal.answers,
            "postgres_ok": postgres.answers,
            "temporal_ours": temporal.ours,
            "postgres_ours": postgres.ours,
            "temporal": asdict(temporal) | {"summary": temporal.describe()},
            "postgres": asdict(postgres) | {"summary": postgres.describe()},
            "workers": sum(len(w) for w in workers.values()),
            "workers_by_kind": {kind: len(w) for kind, w in workers.items()},
            "state_dir": str(self.state),
        }

    # -- local worker fleet ----------------------------------------------------

    @property
    def workers_dir(self) -> Path:
        return self.state / "workers"

    def live_workers(self) -> dict[str, dict[int, int]]:
        """`{kind: {number: pid}}` of this stack's live workers. Pid files of dead workers are
        removed; a live worker whose pid file is missing is found by its environment mark."""
        found: dict[str, dict[int, int]] = {kind: {} for kind in WORKER_KINDS}
        known: set[int] = set()
        for kind in WORKER_KINDS:
            for pidfile in self.workers_dir.glob(f"{kind}-*.pid"):
                number = pidfile.stem.rsplit("-", 1)[1]
                try:
                    pid = int(pidfile.read_text())
                except (OSError, ValueError):
                    pid = 0
                if number.isdigit() and _pid_alive(pid, f"workers.{kind}"):
                    found[kind][int(number)] = pid
                    known.add(pid)
                else:
                    pidfile.unlink(missing_ok=True)
        for pid, kind in self._marked_workers():
            if pid not in known:  # lost its pid file: give it one again, at a free number
                number = next(n for n in itertools.count() if n not in found[kind])
                found[kind][number] = pid
                self._write_pid(kind, number, pid)
        return found

    def _marked_workers(self) -> list[tuple[int, str]]:
        mine = str(self.state)
        marked = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            kind = next((k for k in WORKER_KINDS if f"workers.{k}" in cmdline), None)
            if kind is None:
                continue
            try:
                if proc.environ().get(WORKER_MARK) == mine and proc.status() != psutil.STATUS_ZOMBIE:
                    marked.append((proc.pid, kind))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return marked

    def worker_pids(self) -> list[int]:
        return sorted(pid for workers in self.live_workers().values() for pid in workers.values())

    def _write_pid(self, kind: str, number: int, pid: int) -> None:
        target = self.workers_dir / f"{kind}-{number}.pid"
        partial = target.with_suffix(".pid.tmp")
        partial.write_text(str(pid))
        partial.replace(target)

    def start_workers(self, count: int, env: dict[str, str] | None = None) -> dict[str, int]:
        """Make `count` batch and `count` streaming workers of `env`'s version (its WORKER_BUILD_ID)
        run beside the stack, counting each kind apart and only the live workers of that version;
        returns how many of each kind it started. New ones take the lowest numbers no live worker
        holds (never a live one's pid file). Each new worker writes a fresh log; the previous log of
        that number becomes `.log.1`."""
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        live = self.live_workers()
        build_id = (env or {}).get("WORKER_BUILD_ID")
        env = dict(os.environ, **(env or {}), **{WORKER_MARK: str(self.state)})
        started = {}
        for kind in WORKER_KINDS:
            taken = live[kind]
            mine = [pid for pid in taken.values() if build_id is None or worker_build_id(pid) == build_id]
            free = (n for n in itertools.count() if n not in taken)
            started[kind] = max(0, count - len(mine))
            for _ in range(started[kind]):
                number = next(free)
                log_path = self.workers_dir / f"{kind}-{number}.log"
                if log_path.exists():
                    log_path.replace(log_path.with_name(log_path.name + ".1"))
                with open(log_path, "wb") as log:
                    proc = subprocess.Popen([sys.executable, "-m", f"workers.{kind}"], cwd=PROJECT_ROOT, env=env,
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
                self._write_pid(kind, number, proc.pid)
                taken[number] = proc.pid
        return started

    def stop_workers(self, timeout: float = 70) -> None:
        terminate(self.worker_pids(), timeout)
        for pidfile in self.workers_dir.glob("*.pid"):
            pidfile.unlink(missing_ok=True)


def worker_build_id(pid: int) -> str | None:
    """The WORKER_BUILD_ID a worker process was started with ("" without one; None when it is gone
    or not ours to read)."""
    try:
        return psutil.Process(pid).environ().get("WORKER_BUILD_ID", "")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


async def _temporal_serving(settings: Settings) -> bool:
    """True when a Temporal frontend answers its health check at the configured address."""
    from temporalio.client import Client

    try:
        client = await asyncio.wait_for(Client.connect(settings.temporal_host, namespace=settings.temporal_namespace,
                                                       tls=settings.temporal_tls), 5)
        return bool(await client.service_client.check_health(timeout=timedelta(seconds=3)))
    except Exception:  # noqa: BLE001 - refused, not gRPC, TLS mismatch...: it does not answer as Temporal
        return False


def terminate(pids: list[int], timeout: float = 70) -> None:
    """SIGTERM `pids` (each worker finishes or hands back what it runs), then SIGKILL what is left
    after `timeout` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            psutil.Process(pid).wait(max(0.1, deadline - time.monotonic()))
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
