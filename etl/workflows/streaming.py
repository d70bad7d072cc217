"""`StreamingETLFlow`: pages flow through extract, transform and load inside chunk activities,
with bounded memory and a bounded number of chunks in flight.

The query is split into disjoint chunks (when its source can split), and a sliding window
keeps `chunks_in_flight` of them running, so a fleet's cores work in parallel. Each chunk
activity runs a bounded number of pages, heartbeating its cursor after each committed page,
and hands its state back; the flow re-queues it until it is done. History holds only chunk
states (arguments, cursors, counts) and the flow continues as new when it grows.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from etl.workflows.activity_contracts import StreamingActivities
    from etl.workflows.common import (
        ACTIVITY_RETRY,
        CLEANUP_RETRY,
        HistoryMeter,
        cancel_all,
        cancellation_type,
        progress_of,
        show_details,
        summary_of,
    )
    from etl.workflows.flow_io import (
        ChunkInput,
        ChunkState,
        ETLFlowInput,
        FlowProgress,
        FlowState,
        FlowSummary,
        SplitInput,
    )

# PINNED: a streaming flow can run for hours; it finishes on the version it started on, and its
# chunk activities (whose heartbeat cursors are that version's format) on that version's workers.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class StreamingETLFlow:
    def __init__(self) -> None:
        self._state = FlowState()
        self._stage = "starting"
        self._running = 0
        self._expected: int | None = None
        self._chunk_tasks: dict[int, asyncio.Task] = {}
        self._meter = HistoryMeter()
        self._cancellation = ActivityCancellationType.TRY_CANCEL

    @workflow.query
    def progress(self) -> FlowProgress:
        return progress_of(self._stage, self._state, self._expected, self._running)

    def _details(self) -> None:
        show_details(self.progress())

    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        info = workflow.info()
        self._state = state = inp.state or FlowState(
            flow_key=f"{info.workflow_id}/{info.run_id}", started_at=workflow.now().isoformat())
        self._expected = inp.expected
        self._cancellation = cancellation_type()
        try:
            return await self._run(inp, state)
        except FailureError:
            # Failed: drop the resume points now (terminated, timed-out and reset flows are swept by workers).
            if workflow.patched("cleanup-staging-on-failure"):
                await cancel_all(self._chunk_tasks.values(), self._cancellation)
                try:
                    await self._finish(state)
                except Exception:  # noqa: BLE001 - the sweep removes them later; the first error is the story
                    workflow.logger.warning("could not drop the resume points of %s", state.flow_key)
            raise

    async def _finish(self, state: FlowState) -> None:
        await workflow.execute_activity_method(
            StreamingActivities.finish_stream, state.flow_key, start_to_close_timeout=timedelta(minutes=5),
            retry_policy=CLEANUP_RETRY, summary="drop resume points")

    async def _run(self, inp: ETLFlowInput, state: FlowState) -> FlowSummary:
        info = workflow.info()
        window = max(1, inp.chunks_in_flight)
        self._meter.start()

        if not state.chunks:
            self._stage = "splitting the query into chunks"
            parts = inp.chunk_count or window * 2
            split = await workflow.execute_activity_method(
                StreamingActivities.split_query,
                SplitInput(inp.query_type, inp.extract_strategy, inp.args, parts),
                start_to_close_timeout=timedelta(minutes=5), retry_policy=ACTIVITY_RETRY,
                summary=f"split into up to {parts} chunks")
            self._meter.step()
            state.chunks = [ChunkState(index=i, args=args) for i, args in enumerate(split.chunk_args)]

        queue = [c.index for c in state.chunks if not c.done]
        running = self._chunk_tasks
        continuing = False
        while queue or running:
            while queue and len(running) < window and not continuing:
                index = queue.pop(0)
                running[index] = asyncio.create_task(self._run_chunk(inp, state.chunks[index]))
            self._running = len(running)
            self._stage = f"streaming: {len(running)} chunks in flight"
            self._details()
            finished, _ = await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for index, task in list(running.items()):
                if task in finished:
                    del running[index]
                    chunk = task.result()
                    if not chunk.done:
                        queue.append(index)
            if not continuing and self._meter.over(inp.history_budget):
                continuing = True  # let the running chunks hand back their state, then start afresh
            if continuing and not running:
                break

        self._running = 0
        if queue:
            self._stage = "continuing as new"
            self._details()
            state.runs += 1
            workflow.continue_as_new(replace(inp, state=state))
        state.done = True
        if workflow.patched("streaming-finish-stream"):
            self._stage = "cleaning up"
            await self._finish(state)
        self._stage = "completed"
        self._details()
        return summary_of(info.workflow_id, inp.extract_strategy, state, workflow.now())

    async def _run_chunk(self, inp: ETLFlowInput, chunk: ChunkState) -> ChunkState:
        state = self._state
        result = await workflow.execute_activity_method(
            StreamingActivities.process_chunk,
            ChunkInput(state.flow_key, inp.query_type, inp.extract_strategy, chunk, inp.pages_per_call),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
            retry_policy=ACTIVITY_RETRY, cancellation_type=self._cancellation,
            summary=f"chunk {chunk.index}: {chunk.pages} pages done, up to {inp.pages_per_call} more",
        )
        self._meter.step()
        state.extracted += result.extracted - chunk.extracted
        state.rejected += result.rejected - chunk.rejected
        state.loaded += result.loaded - chunk.loaded
        state.duplicates_skipped += result.duplicates_skipped - chunk.duplicates_skipped
        state.batches += result.pages - chunk.pages
        state.chunk_calls += 1
        state.chunks[chunk.index] = result
        return result
