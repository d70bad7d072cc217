"""A streaming worker paused for memory hands its chunk back when it is told to drain (found by
the soak, issue 27: a worker starved of memory took the whole drain grace to stop, and its chunk
was cancelled at the end of it and run again elsewhere).

The worker runs with MEMORY_LIMIT_MIB=1, so after each committed page its chunk pauses for
MEMORY_HOLD_MAX_S; while it pauses it gets SIGTERM, and a healthy worker joins. The chunk must
come back as a completed call (its progress handed over), not as an attempt cancelled by the
shutdown and retried: no activity needs a second attempt, and every event is there once.
"""

from __future__ import annotations

import asyncio

from etl.launch.plan import plan_flow, start_flow
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.reliability.checks import assert_exact, reconcile, retried_activities, table_ids, within
from tests.workers import WorkerProcess

ARGS = {"count": 20_000, "seed": 2_727, "page_size": 500}


async def test_a_worker_paused_for_memory_hands_its_chunk_back_when_it_drains(client, db, settings, task_queue,
                                                                             tmp_path):
    plan = plan_flow(settings, "synthetic-events", ARGS, streaming=True, task_queue=task_queue, chunk_count=1,
                     chunks_in_flight=1, pages_per_call=25)
    starved = WorkerProcess(settings.replace(memory_limit_mib=1), task_queue, "streaming_worker",
                            log_path=tmp_path / "starved.log", extra_env={"MEMORY_HOLD_MAX_S": "10"})
    healthy = None
    try:
        handle, _ = await start_flow(client, plan)
        for _ in range(1200):  # the first page committed: the chunk now pauses for memory
            if await asyncio.to_thread(lambda: len(table_ids(db))):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the starved worker committed no page (log {tmp_path / 'starved.log'})")
        starved.proc.send_signal(15)
        healthy = WorkerProcess(settings, task_queue, "streaming_worker", log_path=tmp_path / "healthy.log")
        summary = await within(handle.result(), 240, client, [handle.id])
        assert await asyncio.to_thread(starved.proc.wait, 120) == 0
    finally:
        starved.stop()
        if healthy:
            healthy.stop()

    figures = reconcile(db, expected_event_ids(SyntheticQuery(**ARGS)), [summary], expected_rejects=0)
    assert_exact(figures, "drain under backpressure")
    retried = await retried_activities(client, handle.id)
    assert retried == 0, (f"{retried} activity attempts were retried: the draining worker's chunk was cancelled "
                          f"instead of handed back (log {tmp_path / 'starved.log'})")
