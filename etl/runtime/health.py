"""A worker's HTTP endpoints: `/healthz` for orchestrators, `/metrics` for Prometheus.

    /healthz  200 "ok" only while the worker runs (polls its task queue), the database answers
              and Temporal answers; else 503 with one line per problem, e.g.
              "database: no answer from postgresql://etl@db:5432/etl within 3s", or at once
              "database: postgresql://etl@db:5432/etl refused the connection (nothing listens on db:5432)".
              The worker's version (`etl:0.1.0-3f9a1c0b2e4d (current)`, or draining, or drained:
              may stop) is in the `X-Worker-Version` header, and under the status with `?verbose`.
    /metrics  our counters (`etl.metrics`), followed by the Temporal SDK's own metrics.

The SDK's metrics come from its Rust core, which can only serve them itself: `sdk_runtime()`
makes a runtime whose Prometheus exporter listens on a private loopback port, and `/metrics`
fetches that page and appends it, so one scrape target per worker holds both (the SDK names
all start with `temporal_`, ours with `etl_`: they cannot collide).

The server is stdlib `http.server` on a daemon thread. Checks are bounded by a timeout, and a
slow database check is shared between concurrent requests rather than piling up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import urllib.request
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from etl import metrics

log = logging.getLogger(__name__)


class WorkerProbe:
    """What `/healthz` checks: the worker is polling, the database answers, Temporal answers."""

    def __init__(self, worker, client, db, loop: asyncio.AbstractEventLoop, timeout_s: float = 3.0):
        self.worker = worker
        self.client = client
        self.db = db
        self.loop = loop
        self.timeout_s = timeout_s
        self._db_check: concurrent.futures.Future | None = None
        self._db_lock = threading.Lock()

    def problems(self) -> list[str]:
        """Empty when healthy; else one reason per failing check."""
        found = []
        if not self.worker.is_running:
            found.append("worker: not polling its task queue "
                         f"{self.worker.task_queue!r} ({'shut down' if self.worker.is_shutdown else 'not started'})")
        for check in (self._database, self._temporal):
            reason = check()
            if reason:
                found.append(reason)
        return found

    def _database(self) -> str | None:
        where = self.db.settings.public_database_url()
        address = database_address(self.db.settings)
        refused = refused_by(*address) if address else None
        if refused:  # say so at once: the query below would retry a refused connection until the timeout
            return f"database: {where} refused the connection ({refused})"
        with self._db_lock:  # one check in flight at a time: a dead database must not pile up threads
            if self._db_check is None or self._db_check.done():
                self._db_check = self._start_db_check()
            check = self._db_check
        try:
            return None if check.result(self.timeout_s) else f"database: {where} does not answer queries"
        except concurrent.futures.TimeoutError:
            return f"database: no answer from {where} within {self.timeout_s:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to report, not to crash the endpoint
            return f"database: {where}: {exc}"

    def _start_db_check(self) -> concurrent.futures.Future:
        # A daemon thread, not an executor: a check stuck on a dead database must not hold up exit.
        future: concurrent.futures.Future = concurrent.futures.Future()

        def check() -> None:
            try:
                future.set_result(self.db.health_check())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                future.set_exception(exc)

        threading.Thread(target=check, name="health-db", daemon=True).start()
        return future

    def _temporal(self) -> str | None:
        where = self.client.service_client.config.target_host
        host, _, port = where.rpartition(":")
        refused = refused_by(host, int(port)) if port.isdigit() else None
        if refused:
            return f"temporal: {where} refused the connection ({refused})"
        call = self.client.service_client.check_health(timeout=timedelta(seconds=self.timeout_s))
        try:
            serving = asyncio.run_coroutine_threadsafe(call, self.loop).result(self.timeout_s + 1)
        except concurrent.futures.TimeoutError:
            return f"temporal: no answer from {where} within {self.timeout_s:g}s"
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, TLS... all mean unhealthy
            return f"temporal: cannot reach {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return None if serving else f"temporal: {where} answers but its workflow service is not serving"


def database_address(settings) -> tuple[str, int] | None:
    """The (host, port) the database connection goes to, or None when that is not one TCP address
    (a Unix socket, several hosts in DATABASE_URL)."""
    if not settings.database_url:
        return settings.db_host, settings.db_port
    from urllib.parse import urlsplit

    try:
        url = urlsplit(settings.database_url)
        host, port = url.hostname, url.port or 5432
    except ValueError:
        return None
    return (host, port) if host and "," not in url.netloc and not host.startswith("/") else None


def refused_by(host: str, port: int, timeout_s: float = 1.0) -> str | None:
    """Why `host:port` refused a TCP connection ("nothing listens on db:5432"), or None when it
    accepted one or failed some other way (then the protocol check, with its own timeout, decides).

    A refusal is immediate and final, so `/healthz` reports it at once instead of waiting out its
    timeout on retries that cannot help."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return f"nothing listens on {host}:{port}"
    except OSError:  # timed out, unresolvable, unreachable...: not a refusal; the real check reports it
        return None


def sdk_runtime(port: int):
    """A Temporal runtime whose SDK metrics are served on 127.0.0.1:`port`; set it as the default
    (`Runtime.set_default`) before connecting the client."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"127.0.0.1:{port}", counters_total_suffix=True, durations_as_seconds=True)))


def metrics_page(sdk_metrics_url: str | None) -> str:
    """Our counters, then the SDK's page (or a comment saying why it is missing)."""
    page = metrics.render()
    if sdk_metrics_url:
        try:
            with urllib.request.urlopen(sdk_metrics_url, timeout=2) as response:
                page += response.read().decode()
        except OSError as exc:
            page += f"# temporal SDK metrics unavailable from {sdk_metrics_url}: {exc}\n"
    return page


class HealthServer:
    """Serves `/healthz` (from `problems()`) and `/metrics` on host:port from a daemon thread."""

    def __init__(self, host: str, port: int, problems: Callable[[], list[str]],
                 sdk_metrics_url: str | None = None, info: Callable[[], list[str]] | None = None):
        handler = _handler(problems, sdk_metrics_url, info)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise OSError(f"cannot serve /healthz on {host}:{port}: {exc.strerror or exc}; "
                          "choose another --health-port (HEALTH_PORT)") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("serving /healthz and /metrics on %s:%d", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(problems: Callable[[], list[str]], sdk_metrics_url: str | None,
             info: Callable[[], list[str]] | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.split("?")[0] == "/healthz":
                found = problems()
                # The worker's version and whether it drains: an `X-Worker-Version` header always,
                # and lines under the status with `?verbose` (probes compare the body to "ok").
                lines = info() if info else []
                extra = "".join(f"{line}\n" for line in lines) if "verbose" in self.path else ""
                headers = {"X-Worker-Version": lines[0].removeprefix("version: ")} if lines else {}
                self._send(503 if found else 200, ("\n".join(found) + "\n" if found else "ok\n") + extra,
                           headers=headers)
            elif self.path.split("?")[0] == "/metrics":
                self._send(200, metrics_page(sdk_metrics_url), "text/plain; version=0.0.4")
            else:
                self._send(404, "not found: try /healthz or /metrics\n")

        def _send(self, status: int, body: str, content_type: str = "text/plain",
                  headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # probes every few seconds: keep them out of the log
            log.debug("health: " + format, *args)

    return Handler


def enable_sdk_metrics() -> str:
    """Make the default Temporal runtime export SDK metrics on a free loopback port (call before
    connecting any client); returns the URL `/metrics` fetches them from."""
    from temporalio.runtime import Runtime

    from etl.devstack.servers import free_port

    port = free_port()
    Runtime.set_default(sdk_runtime(port), error_if_already_set=True)
    return f"http://127.0.0.1:{port}/metrics"


def serve_for_worker(worker, client, settings, port: int, sdk_metrics_url: str | None = None,
                     info: Callable[[], list[str]] | None = None) -> HealthServer:
    """Start `/healthz` and `/metrics` for `worker` on HEALTH_HOST:`port`; call from the worker's event loop."""
    from etl.store.db import Database

    probe = WorkerProbe(worker, client, Database.get(settings), asyncio.get_running_loop())
    return HealthServer(settings.health_host, port, probe.problems, sdk_metrics_url, info).start()
