"""The local stack `scripts/dev.py` manages: both servers, with their state under `.etl/`.

    .etl/postgres/          PostgreSQL data (server.log inside)
    .etl/temporal.db        Temporal's SQLite store: workflows survive restarts
    .etl/temporal.pid/.log  the dev server's process id and log
    .etl/workers/           `<kind>-<n>.pid` and `.log` of workers started with `up --workers N`
                            (`.log.1`: the log of the previous worker with that number; see
                            `etl.devstack.local_workers`)

"Ours" means started from this state directory: the process in our pid file (or PostgreSQL's
`postmaster.pid`) is the one listening. Whatever else answers on a configured port (another
checkout's `dev.py up`, a test's private stack) is reported with its process, and left alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import psutil

from etl.core.errors import StackError
from etl.core.settings import Settings
from etl.devstack.local_workers import (  # noqa: F401 - terminate, worker_build_id: version_workers
    WORKER_KINDS,
    LocalWorkers,
    terminate,
    worker_build_id,
)
from etl.devstack.servers import (
    EmbeddedPostgres,
    TemporalDevServer,
    _pid_alive,
    port_answers,
)


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
class DevStack(LocalWorkers):
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

    def up(self, workers: int | None = None, env: dict[str, str] | None = None) -> list:
        """Start what is not running (reusing what is) and wait until both answer. With `workers`,
        exactly that many of each kind run afterwards (extra ones drained), each new one healthy
        or a `StackError` saying which is not and why; `env` goes to the new workers (dev.py: their
        deployment name and build id). Returns the workers it drained."""
        if workers is not None and workers < 0:
            raise StackError(f"--workers {workers}: give how many workers of each kind to keep running, 0 or more")
        self.state.mkdir(parents=True, exist_ok=True)
        self._refuse_foreign(self.postgres_owner(), "PostgreSQL", "DB_PORT")
        self.postgres.start()
        self._refuse_foreign(self.temporal_owner(), "the Temporal server", "TEMPORAL_HOST")
        self.temporal.start()
        if workers is None:
            return []
        started, stopped = self.scale_workers(workers, env)
        problems = self.wait_started(started)
        if problems:
            raise StackError("; ".join(f"worker {name} {why}" for name, why in problems.items()))
        return stopped

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
        workers = self.workers()
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
            "workers": len(workers),
            "workers_by_kind": {kind: sum(1 for w in workers if w.kind == kind) for kind in WORKER_KINDS},
            "worker_list": [w.as_dict() | {"health": w.health()} for w in workers],
            "state_dir": str(self.state),
        }


async def _temporal_serving(settings: Settings) -> bool:
    """True when a Temporal frontend answers its health check at the configured address."""
    from temporalio.client import Client

    try:
        client = await asyncio.wait_for(Client.connect(settings.temporal_host, namespace=settings.temporal_namespace,
                                                       tls=settings.temporal_tls), 5)
        return bool(await client.service_client.check_health(timeout=timedelta(seconds=3)))
    except Exception:  # noqa: BLE001 - refused, not gRPC, TLS mismatch...: it does not answer as Temporal
        return False
