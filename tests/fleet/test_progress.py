"""What a streaming flow's `progress` query says: chunk calls, pages and finished chunks, each true.

A chunk is read by several activity calls (`pages_per_call` pages each) and is done only after its
last page, so "chunks done" alone reads 0 long after most of the data has loaded."""

from __future__ import annotations

from etl.workflows.flow_io import FlowProgress, FlowSummary


async def chunk_calls_in_history(handle) -> int:
    """Completed chunk activities, counted from the flow's history (what the UI's event list shows)."""
    names: dict[int, str] = {}
    completed = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            completed += "chunk" in names.get(scheduled, "")
    return completed


async def test_streaming_progress_counts_calls_pages_and_finished_chunks(flow_runner, db):
    handle = await flow_runner.start("synthetic-events", {"count": 4000, "seed": 61, "page_size": 250},
                                     streaming=True, chunk_count=2, chunks_in_flight=2, pages_per_call=2)
    summary: FlowSummary = await handle.result()
    progress: FlowProgress = await handle.query("progress", result_type=FlowProgress)

    calls = await chunk_calls_in_history(handle)
    assert progress.chunk_calls == calls > progress.chunks_total == 2  # several calls per chunk
    assert progress.chunks_done == 2 and progress.chunks_running == 0
    assert progress.pages == summary.batches == 16  # 4,000 events in pages of 250
    assert progress.loaded == summary.loaded == db.count_events()
