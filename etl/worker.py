"""Building and running a worker process of the fleet.

`build_worker` registers the workflows and activities of one kind (batch, streaming, or
both for tests), runs the sync activities on a thread pool sized to the concurrency, and
lets in-flight activities finish on shutdown (`graceful_shutdown_timeout`). `serve` runs
one until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Iterable

from temporalio.client import Client
from temporalio.worker import Worker

from etl.activities import ETLActivities
from etl.db import Database
from etl.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN = timedelta(seconds=60)


def build_worker(client: Client, settings: Settings, *, task_queue: str, concurrency: int,
                 kinds: Iterable[str] = ("batch",), identity: str | None = None) -> Worker:
    """A worker for `kinds` ("batch", "streaming") on `task_queue`."""
    from etl.workflows.batch import ETLFlow

    kinds = set(kinds)
    db = Database.get(settings)
    workflows: list = []
    activities: list = []
    if "batch" in kinds:
        acts = ETLActivities(settings, db)
        workflows.append(ETLFlow)
        activities += [acts.extract_batch, acts.transform_batch, acts.load_batch, acts.finish_flow]
    if "streaming" in kinds:
        from etl.streaming_activities import StreamingActivities
        from etl.workflows.streaming import StreamingETLFlow

        sacts = StreamingActivities(settings, db)
        workflows.append(StreamingETLFlow)
        activities += [sacts.split_query, sacts.process_chunk]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="activity"),
        max_concurrent_activities=concurrency,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        identity=identity,
    )


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
