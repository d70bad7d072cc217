"""A worker killed with SIGKILL mid-flow: another worker finishes, every event exactly once."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType

from etl.launch.plan import plan_flow, start_flow
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.workers import WorkerProcess


def table_ids(db) -> list[str]:
    return db.run(lambda cur: (cur.execute(f'SELECT event_id FROM "{db.tables.name}"'),
                               [r[0] for r in cur.fetchall()])[1])


async def wait_for_progress(handle, at_least: int, timeout: float = 120) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            progress = await handle.query("progress")
            if progress["extracted"] >= at_least:
                return progress
        except Exception:  # noqa: BLE001 - no worker has picked the workflow up yet
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the flow did not reach {at_least} extracted records in {timeout}s")


async def wait_for_heartbeated_cursor(client, handle, timeout: float = 120) -> dict:
    """Wait until a running chunk activity has heartbeated a cursor past its start, so a kill
    now leaves a chunk with somewhere to resume from."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == "process_chunk" and pending.heartbeat_details.payloads:
                details = client.data_converter.payload_converter.from_payload(
                    pending.heartbeat_details.payloads[0])
                if isinstance(details, dict) and details.get("cursor") and details.get("pages"):
                    return details
        await asyncio.sleep(0.05)
    raise AssertionError(f"no chunk heartbeated a cursor within {timeout}s")


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_sigkill_mid_flow_loses_and_doubles_nothing(client, settings, db, task_queue, tmp_path, streaming):
    args = {"count": 150_000, "seed": 21 if streaming else 22, "bad_rate": 0.01, "page_size": 500}
    fields = {"chunks_in_flight": 2, "chunk_count": 4, "pages_per_call": 40} if streaming else {"batch_size": 5_000}
    plan = plan_flow(settings, "synthetic-events", args, streaming=streaming, task_queue=task_queue,
                     workflow_id=f"crash-{task_queue}", heartbeat_timeout_s=3, **fields)
    kind = "streaming_worker" if streaming else "etl_worker"
    first = WorkerProcess(settings, task_queue, kind, log_path=tmp_path / "first.log")
    second = None
    try:
        handle, _ = await start_flow(client, plan)
        progress = await wait_for_progress(handle, 20_000)
        if streaming:
            await wait_for_heartbeated_cursor(client, handle)
        first.kill()
        assert not progress["done"]
        second = WorkerProcess(settings, task_queue, kind, log_path=tmp_path / "second.log")
        summary = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        first.stop()
        if second:
            second.stop()

    expected = expected_event_ids(SyntheticQuery(**args))
    ids = table_ids(db)
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert summary.loaded + summary.unchanged >= len(expected)
    assert summary.extracted == summary.loaded + summary.rejected + summary.unchanged

    if streaming:
        # The chunk that was running when the worker died resumed from its heartbeat, not from page zero.
        resumed = []
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                payload = event.activity_task_completed_event_attributes.result.payloads[0]
                result = client.data_converter.payload_converter.from_payload(payload)
                if isinstance(result, dict) and result.get("resumed"):
                    resumed.append(result)
        assert resumed, "no chunk resumed from a heartbeat after the kill"
        assert any(c["resumed_from"] is not None for c in resumed)
