"""The dev stack's worker processes: `dev.py up --workers N`, `restart`, and what `status` shows.

    .etl/workers/<kind>-<n>.pid   the worker's process id
    .etl/workers/<kind>-<n>.log   its output (`.log.1`: the previous worker with that number)

What a worker started with is read back from its own environment, so nothing else has to be
kept in step with it: `HEALTH_PORT` (each worker gets a free port of its own, so `/healthz` and
`/metrics` of every worker can be reached), `WORKER_BUILD_ID` (its version), and a fingerprint
of the settings it read (`.env` and the environment), which `up` compares with today's to say
when running workers still hold old settings.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from etl.core.errors import StackError
from etl.core.settings import FRAMEWORK_VARIABLES, PROJECT_ROOT, Settings
from etl.devstack.servers import _pid_alive, free_port

WORKER_KINDS = ("etl_worker", "streaming_worker")

#: Set in the environment of every worker `up` starts: the state directory they belong to, so
#: `status` and `down` find them even if a pid file went missing.
WORKER_MARK = "ETL_DEVSTACK_STATE_DIR"

#: Also set there: `settings_fingerprint` of the settings the worker was started with.
SETTINGS_MARK = "ETL_DEVSTACK_SETTINGS"

#: Settings each worker gets on its own, left out of the fingerprint.
_PER_WORKER = {"HEALTH_PORT", "WORKER_BUILD_ID"}


def settings_fingerprint(settings: Settings) -> str:
    """A short hash of every declared setting's value (`.env` and the environment): equal for
    equal settings, so a worker started with others is told apart. Holds no value itself."""
    from etl.core.source_settings import source_settings_classes

    names = set(FRAMEWORK_VARIABLES) | {v.name for cls in source_settings_classes() for v in cls.variables()}
    values = sorted((name, settings.env[name]) for name in names - _PER_WORKER if name in settings.env)
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


@dataclass
class WorkerProcess:
    """One live worker of the stack, as `dev.py status` shows it."""

    kind: str
    number: int
    pid: int
    health_port: int | None
    """Its `/healthz` and `/metrics` port; None for a worker started without one."""
    health_host: str = "127.0.0.1"
    build_id: str = ""
    settings_mark: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.number}"

    @property
    def healthz(self) -> str | None:
        if not self.health_port:
            return None
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.health_host, self.health_host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.health_port}/healthz"

    def health(self, timeout: float = 5) -> str:
        """`ok`, `503: <first problem>`, or why nothing answered."""
        if not self.healthz:
            return "no health port (started before dev workers had one: `dev.py restart`)"
        try:
            with urllib.request.urlopen(self.healthz, timeout=timeout) as response:
                return response.read().decode(errors="replace").strip() or str(response.status)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace").strip().splitlines()
            return f"{exc.code}: {body[0] if body else exc.reason}"
        except OSError as exc:
            return f"no answer ({getattr(exc, 'reason', exc)})"

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "number": self.number, "pid": self.pid,
                "health_port": self.health_port, "healthz": self.healthz, "build_id": self.build_id}


def _environ(pid: int) -> dict[str, str]:
    try:
        return psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


class LocalWorkers:
    """The worker half of `DevStack`: needs `settings` and `state` from it."""

    settings: Settings
    state: Path

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

    def workers(self) -> list[WorkerProcess]:
        """Every live worker with what it was started with, by kind and number."""
        listed = []
        for kind, numbered in self.live_workers().items():
            for number, pid in sorted(numbered.items()):
                env = _environ(pid)
                port = env.get("HEALTH_PORT", "")
                listed.append(WorkerProcess(kind, number, pid, int(port) if port.isdigit() and int(port) else None,
                                            env.get("HEALTH_HOST", self.settings.health_host),
                                            env.get("WORKER_BUILD_ID", ""), env.get(SETTINGS_MARK, "")))
        return listed

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

    def outdated(self, build_id: str) -> tuple[list[WorkerProcess], list[WorkerProcess]]:
        """(live workers started with other settings than today's, live workers of another build
        than `build_id`, the one today's code makes). A worker that carries no mark is in neither."""
        workers, today = self.workers(), settings_fingerprint(self.settings)
        return ([w for w in workers if w.settings_mark and w.settings_mark != today],
                [w for w in workers if w.build_id and w.build_id != build_id])

    def worker_pids(self) -> list[int]:
        return sorted(pid for workers in self.live_workers().values() for pid in workers.values())

    def _write_pid(self, kind: str, number: int, pid: int) -> None:
        target = self.workers_dir / f"{kind}-{number}.pid"
        partial = target.with_suffix(".pid.tmp")
        partial.write_text(str(pid))
        partial.replace(target)

    def start_workers(self, count: int, env: dict[str, str] | None = None) -> list[WorkerProcess]:
        """Make at least `count` batch and `count` streaming workers of `env`'s build (its
        WORKER_BUILD_ID; any build without one) run beside the stack, each kind counted apart: live
        ones are kept, and new ones take the lowest numbers no live worker holds (never a live one's pid
        file). Each new worker gets a free health port and writes a fresh log; the previous log of
        that number becomes `.log.1`. Returns the workers it started."""
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        live = self.live_workers()
        base = dict(os.environ, **(env or {}), **{WORKER_MARK: str(self.state),
                                                   SETTINGS_MARK: settings_fingerprint(self.settings)})
        build_id = (env or {}).get("WORKER_BUILD_ID")
        started = []
        for kind in WORKER_KINDS:
            taken = live[kind]
            mine = [pid for pid in taken.values() if build_id is None or worker_build_id(pid) == build_id]
            free = (n for n in itertools.count() if n not in taken)
            for _ in range(count - len(mine)):
                number, port = next(free), free_port()
                log_path = self.workers_dir / f"{kind}-{number}.log"
                if log_path.exists():
                    log_path.replace(log_path.with_name(log_path.name + ".1"))
                with open(log_path, "wb") as log:
                    proc = subprocess.Popen([sys.executable, "-m", f"workers.{kind}"], cwd=PROJECT_ROOT,
                                            env=dict(base, HEALTH_PORT=str(port)), stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                self._write_pid(kind, number, proc.pid)
                taken[number] = proc.pid
                started.append(WorkerProcess(kind, number, proc.pid, port, self.settings.health_host,
                                             base.get("WORKER_BUILD_ID", ""), base[SETTINGS_MARK]))
        return started

    def scale_workers(self, count: int, env: dict[str, str] | None = None,
                      timeout: float = 70) -> tuple[list[WorkerProcess], list[WorkerProcess]]:
        """Make exactly `count` workers of each kind run: start the missing ones, drain (SIGTERM)
        the extra ones: those of another build than `env`'s first, then the highest numbers.
        Returns (started, stopped)."""
        if count < 0:
            raise StackError(f"--workers {count}: give how many workers of each kind to keep running, 0 or more")
        build = (env or {}).get("WORKER_BUILD_ID", "")
        extra = []
        for kind in WORKER_KINDS:
            mine = [w for w in self.workers() if w.kind == kind]
            extra += sorted(mine, key=lambda w: (w.build_id != build, w.number))[count:]
        if extra:
            terminate([w.pid for w in extra], timeout)
            for worker in extra:
                (self.workers_dir / f"{worker.name}.pid").unlink(missing_ok=True)
        return self.start_workers(count, env), extra

    def stop_workers(self, timeout: float = 70) -> None:
        terminate(self.worker_pids(), timeout)
        for pidfile in self.workers_dir.glob("*.pid"):
            pidfile.unlink(missing_ok=True)

    def wait_started(self, started: list[WorkerProcess], timeout: float = 90) -> dict[str, str]:
        """Wait until each worker in `started` answers `/healthz` with 200, or exits, or `timeout`
        passes. Returns {worker name: problem} for those that did not come up healthy; a worker
        that exited is named with the last line of its log."""
        waiting = {w.name: w for w in started}
        problems: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while waiting:
            for name, worker in list(waiting.items()):
                if not _pid_alive(worker.pid, f"workers.{worker.kind}"):
                    problems[name] = f"exited at start: {self._last_words(name)}"
                elif worker.health(timeout=3) == "ok":
                    pass
                elif time.monotonic() < deadline:
                    continue
                else:
                    problems[name] = f"not healthy after {timeout:g}s: /healthz says {worker.health()}"
                del waiting[name]
            if waiting:
                time.sleep(0.5)
        return problems

    def _last_words(self, name: str) -> str:
        log = self.workers_dir / f"{name}.log"
        try:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            lines = []
        return f"{lines[-1][:300] if lines else 'no output'} (log: {log})"


def worker_build_id(pid: int) -> str | None:
    """The WORKER_BUILD_ID a worker process was started with ("" without one; None when it is gone
    or not ours to read)."""
    try:
        return psutil.Process(pid).environ().get("WORKER_BUILD_ID", "")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


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
