"""A worker's `/healthz` and `/metrics`: what an orchestrator and Prometheus see."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import urllib.error
import urllib.request

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from etl import metrics
from etl.core.settings import PROJECT_ROOT
from etl.devstack.servers import free_port
from etl.launch.plan import plan_flow, start_flow
from etl.runtime.health import HealthServer, WorkerProbe
from etl.runtime.worker import build_worker
from etl.store.db import Database
from tests.fleet.conftest import script_env
from tests.flows import FlowRunner


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def get(port: int, path: str) -> tuple[int, str]:
    """GET from a thread: the probe needs this event loop free to ask Temporal."""
    return await asyncio.to_thread(_get, port, path)


def sample(page: str, name: str, **labels: str) -> float:
    tags = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}{re.escape('{' + tags + '}') if tags else ''} ([0-9.e+]+)$", page, re.M)
    return float(match.group(1)) if match else 0.0


async def test_healthz_is_200_only_while_worker_database_and_temporal_answer(flow_runner, client, db, settings):
    loop = asyncio.get_running_loop()

    async def healthz(worker, temporal, database) -> tuple[int, str]:
        server = HealthServer("127.0.0.1", 0, WorkerProbe(worker, temporal, database, loop, timeout_s=2).problems)
        server.start()
        try:
            return await get(server.port, "/healthz")
        finally:
            server.stop()

    assert await healthz(flow_runner.worker, client, db) == (200, "ok\n")

    # Nothing listens on `closed`: a refusal is reported as one, not as a timeout after retries.
    closed = free_port()
    dead_db = Database(settings.replace(db_port=closed))
    try:
        status, body = await healthz(flow_runner.worker, client, dead_db)
    finally:
        dead_db.close()
    assert status == 503
    assert body == (f"database: postgresql://{settings.db_user}@{settings.db_host}:{closed}/{settings.db_name} "
                    f"refused the connection (nothing listens on {settings.db_host}:{closed})\n")

    unreachable = await Client.connect(f"127.0.0.1:{closed}", lazy=True)
    status, body = await healthz(flow_runner.worker, unreachable, db)
    assert status == 503
    assert body == f"temporal: 127.0.0.1:{closed} refused the connection (nothing listens on 127.0.0.1:{closed})\n"

    idle = build_worker(client, settings, task_queue="never-started", concurrency=1)
    status, body = await healthz(idle, client, db)
    assert status == 503 and body == "worker: not polling its task queue 'never-started' (not started)\n"


async def test_metrics_count_activities_and_include_sdk_metrics(stack, settings, db, task_queue):
    sdk_port = free_port()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{sdk_port}",
                                                                         counters_total_suffix=True)))
    client = await Client.connect(settings.temporal_host, runtime=runtime)
    async with FlowRunner(client, settings, task_queue) as runner:
        probe = WorkerProbe(runner.worker, client, db, asyncio.get_running_loop())
        server = HealthServer("127.0.0.1", 0, probe.problems, f"http://127.0.0.1:{sdk_port}/metrics").start()
        try:
            _, before = await get(server.port, "/metrics")
            summary = await runner.run("synthetic-events", {"count": 3000, "seed": 500}, batch_size=1000)
            _, after = await get(server.port, "/metrics")
        finally:
            server.stop()

    for activity in ("extract_batch", "transform_batch", "load_batch"):
        assert (sample(after, "etl_activities_completed_total", activity=activity)
                - sample(before, "etl_activities_completed_total", activity=activity)) >= summary["batches"] - 1 >= 2
    assert sample(after, "etl_activities_started_total", activity="load_batch") > \
        sample(before, "etl_activities_started_total", activity="load_batch")
    assert "# TYPE etl_events_loaded_total counter" in after
    assert re.search(r"^temporal_\w+", after, re.M), "the SDK's own metrics are appended"


async def test_event_counters_rise_by_what_a_flow_loaded(run_flow):
    loaded, rejected = metrics.value(metrics.EVENTS_LOADED), metrics.value(metrics.EVENTS_REJECTED)
    summary = await run_flow("synthetic-events", {"count": 2000, "seed": 501, "bad_rate": 0.05})
    assert metrics.value(metrics.EVENTS_LOADED) - loaded == summary["loaded"]
    assert metrics.value(metrics.EVENTS_REJECTED) - rejected >= summary["rejected"]


async def test_worker_process_serves_health_and_metrics_and_stops_on_sigterm(client, db, settings, task_queue):
    port = free_port()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.etl_worker", "--health-port", str(port), "--concurrency", "2",
        cwd=PROJECT_ROOT, env=script_env(settings, task_queue),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                status, body = await get(port, "/healthz")
            except OSError:  # not listening yet
                status, body = 0, ""
            if status == 200:
                break
            await asyncio.sleep(0.5)
        assert (status, body) == (200, "ok\n")

        handle, _ = await start_flow(client, plan_flow(settings, "synthetic-events", {"count": 500, "seed": 502},
                                                       task_queue=task_queue))
        await handle.result()
        _, page = await get(port, "/metrics")
        assert sample(page, "etl_activities_completed_total", activity="load_batch") >= 1
        assert re.search(r"^temporal_\w+", page, re.M)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 90)
