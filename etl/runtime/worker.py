"""Building and running a worker process of the fleet.

`build_worker` registers the workflows and activities of one kind (batch, streaming, or
both for tests), runs the sync activities on a thread pool sized to the concurrency, and
lets in-flight activities finish on shutdown (`graceful_shutdown_timeout`). `serve` runs
one until SIGTERM or Ctrl-C.

A worker process (`main`) always runs as a version of the fleet's Worker Deployment (see
`etl.runtime.versioning`): it prints its version at start, makes it current if the deployment
has none yet (a fleet's very first start), and shows on `/healthz` whether its version is
current, ramping, draining or drained. `build_worker` without `version` (the tests' in-process
workers) makes the worker a version of a deployment private to its task queue: workflows declare
a versioning behaviour, and the server accepts one only from a versioned worker.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import FixedSizeSlotSupplier, Worker, WorkerTuner

from etl.activities.backpressure import MemoryAwareSlotSupplier, MemoryGuard
from etl.activities.batch import ETLActivities
from etl.core.settings import Settings
from etl.metrics import ActivityMetricsInterceptor
from etl.runtime import versioning
from etl.runtime.sweeper import sweep_forever
from etl.store.db import Database

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN = timedelta(seconds=60)


def build_worker(client: Client, settings: Settings, *, task_queue: str, concurrency: int,
                 kinds: Iterable[str] = ("batch",), identity: str | None = None,
                 version: WorkerDeploymentVersion | None = None, **options) -> Worker:
    """A worker for `kinds` ("batch", "streaming") on `task_queue`, as `version` of its deployment
    when given. `options` go to `Worker` as they are (tests add `interceptors`)."""
    kinds = set(kinds)
    db = Database.get(settings)
    workflows: list = []
    activities: list = []
    if "batch" in kinds:
        from etl.workflows.batch import ETLFlow
        from etl.workflows.fanout import FanOutFlow
        from etl.workflows.scheduled import ScheduledFlow

        acts = ETLActivities(settings, db)
        # Batch workers also run the fleet's orchestration: fan-outs and scheduled runs.
        workflows += [ETLFlow, FanOutFlow, ScheduledFlow]
        activities += [acts.extract_batch, acts.transform_batch, acts.load_batch, acts.split_extract,
                       acts.finish_flow]
    limits: dict = {"max_concurrent_activities": concurrency}
    if "streaming" in kinds:
        from etl.activities.streaming import StreamingActivities
        from etl.workflows.streaming import StreamingETLFlow

        guard = MemoryGuard(settings.memory_limit_mib, settings.memory_hold_max_s)
        sacts = StreamingActivities(settings, db, guard)
        workflows.append(StreamingETLFlow)
        activities += [sacts.split_query, sacts.process_chunk, sacts.finish_stream]
        # Above the memory threshold the worker stops taking activity tasks (new chunks).
        limits = {"tuner": WorkerTuner.create_composite(
            workflow_supplier=FixedSizeSlotSupplier(100),
            activity_supplier=MemoryAwareSlotSupplier(concurrency, guard),
            local_activity_supplier=FixedSizeSlotSupplier(10),
            nexus_supplier=FixedSizeSlotSupplier(10),
        )}
    version = version or private_version(task_queue)
    return FleetWorker(
        client,
        version=version,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="activity"),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        identity=identity,
        # every worker counts its activity attempts (tests add their own interceptors after it)
        interceptors=[ActivityMetricsInterceptor(), *options.pop("interceptors", [])],
        # Activities go through the task queue, not eagerly to the worker that ran the workflow task,
        # so where several workers poll, a flow's chunks spread over them (one SIGKILL, fewer chunks hit).
        disable_eager_activity_execution=True,
        # Heartbeats reach the server within 2 s (the SDK would hold them for 80% of the timeout).
        max_heartbeat_throttle_interval=timedelta(seconds=2),
        # A SIGKILLed worker's cached workflows: their next task goes to any worker after 3 s, not 10 s.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        deployment_config=versioning.deployment_config(version),
        **limits,
        **options,
    )


class FleetWorker(Worker):
    """A `Worker` that, once it polls, makes its version current if its deployment has none yet:
    without a current version the server hands no task to a versioned worker."""

    def __init__(self, *args, version: WorkerDeploymentVersion, **kwargs):
        super().__init__(*args, **kwargs)
        self.version = version

    async def run(self) -> None:
        first = asyncio.create_task(self._first_version())
        try:
            await super().run()
        finally:
            first.cancel()

    async def _first_version(self, first_wait_s: float = 5.0, max_wait_s: float = 60.0) -> None:
        """Make this version current if its deployment has none, trying again until it is done (or
        another version is): a slow server must not leave a first worker polling for tasks that
        never come. Each failure is logged with the command that does it by hand."""
        wait = first_wait_s
        while True:
            try:
                await versioning.bootstrap_current(self.client, self.version)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker still serves; the operator can set it by hand
                log.error("could not make %s current (%s); trying again in %.0f s, or run: "
                          "python scripts/deploy.py set-current %s",
                          versioning.show(self.version), exc, wait, self.version.build_id)
            await asyncio.sleep(wait)
            wait = min(wait * 2, max_wait_s)


def private_version(task_queue: str) -> WorkerDeploymentVersion:
    """The version of a worker built without one: a deployment of its own task queue."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"local-{task_queue}")[:64]
    return WorkerDeploymentVersion(name, "local")


async def serve(worker: Worker) -> None:
    """Run `worker` until SIGTERM/SIGINT, then drain: in-flight activities finish or are handed back."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling task queue %r", worker.task_queue)
        await stop.wait()
        log.info("signal received: draining (up to %ss)", int(GRACEFUL_SHUTDOWN.total_seconds()))
    log.info("worker stopped")


def main(kind: str, argv: list[str] | None = None) -> int:
    """The command line of `python -m workers.etl_worker` and `python -m workers.streaming_worker`."""
    import argparse
    import os
    import socket

    from etl.core import discovery
    from etl.core.errors import EtlError
    from etl.core.settings import load_settings
    from etl.core.source_settings import source_settings_classes
    from etl.runtime.client import connect

    from etl.core.settings import Settings

    try:
        settings = load_settings()
        for cls in source_settings_classes():  # every source's settings, checked before any flow needs them
            settings.source(cls)
        for failure in discovery.failures():  # the other sources loaded: this worker serves them
            print(f"error: {failure}", file=sys.stderr, flush=True)
    except EtlError as exc:
        if not {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        settings = Settings()  # --help still answers (with the built-in defaults) when a setting is bad
    default_queue = settings.streaming_task_queue if kind == "streaming" else settings.task_queue
    parser = argparse.ArgumentParser(
        prog=f"python -m workers.{'streaming_worker' if kind == 'streaming' else 'etl_worker'}",
        description=f"Run a {kind} worker of the ETL fleet until SIGTERM or Ctrl-C, then drain gracefully: "
                    f"in-flight activities get up to {int(GRACEFUL_SHUTDOWN.total_seconds())}s to finish, "
                    "after which Temporal hands them to another worker.")
    parser.add_argument("--task-queue", default=default_queue,
                        help=f"task queue to poll (default {default_queue!r}, from "
                             f"{'ETL_STREAMING_TASK_QUEUE' if kind == 'streaming' else 'ETL_TASK_QUEUE'})")
    parser.add_argument("--concurrency", type=int, default=settings.worker_concurrency,
                        help=f"activities run at once, on that many threads (default {settings.worker_concurrency}, "
                             "from WORKER_CONCURRENCY)")
    parser.add_argument("--health-port", type=int, default=settings.health_port,
                        help="serve /healthz and /metrics on this port of HEALTH_HOST (default 127.0.0.1; "
                             "0.0.0.0 in containers) (default HEALTH_PORT; 0: off). See etl/health.py")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency {args.concurrency}: give 1 or more")
    if not 0 <= args.health_port <= 65535:
        parser.error(f"--health-port {args.health_port}: give a TCP port (1-65535), or 0 for none")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    identity = f"{kind}@{socket.gethostname()}:{os.getpid()}"
    version = versioning.worker_version(settings)

    from etl.runtime import gc_policy, health

    # The SDK's metrics exporter must be configured before the first client connects.
    sdk_metrics_url = health.enable_sdk_metrics() if args.health_port else None

    async def run() -> None:
        client = await connect(settings, wait_s=30)  # its server may be starting beside it
        worker = build_worker(client, settings, task_queue=args.task_queue, concurrency=args.concurrency,
                              kinds=(kind,), identity=identity, version=version)
        gc_policy.tune()  # after the imports and registrations: see etl/runtime/gc_policy.py
        print(f"worker version {versioning.show(version)} (deployment {version.deployment_name!r}, "
              f"build id {version.build_id!r})", flush=True)
        for line in versioning.package_lines():
            print(f"  {line}", flush=True)
        log.info("%s starting on %s (queue %r, concurrency %d, version %s)", identity, settings.temporal_host,
                 args.task_queue, args.concurrency, versioning.show(version))
        watch = versioning.DrainWatch(client, version)
        server = (health.serve_for_worker(worker, client, settings, args.health_port, sdk_metrics_url,
                                          info=watch.lines) if args.health_port else None)
        background = [asyncio.create_task(watch.run()),  # tells when this version has drained
                      asyncio.create_task(sweep_forever(client, settings))]  # staging of ended flows
        try:
            await serve(worker)
        finally:
            for task in background:
                task.cancel()
            if server:
                server.stop()

    try:
        asyncio.run(run())
    except OSError as exc:  # e.g. the health port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
