"""`StreamingETLFlow`: pages flow through extract, transform and load inside chunk activities,
with bounded memory and a bounded number of chunks in flight.

The query is split into disjoint chunks (when its source can split), and a sliding window
keeps `chunks_in_flight` of them running, so a fleet's cores work in parallel. Each chunk
activity runs up to `pages_per_call` pages, committing its cursor with every page, and hands
its state back; the flow queues it again until it is read to the end. History holds only
chunk states (arguments, cursors, counts) and the flow continues as new when it grows.
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


# PINNED: a streaming flow can run for hours; it finishes on the build it started on, and its
# chunk activities (whose resume points are that build's format) on that build's workers.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class StreamingETLFlow:
    def __init__(self) -> None:
        self._state = FlowState()
        self._stage = "starting"
        self._expected: int | None = None
        self._running: dict[int, asyncio.Task] = {}
        """Chunk index -> its activity call in flight."""
        self._meter = HistoryMeter()

    @workflow.query
    def progress(self) -> FlowProgress:
        return progress_of(self._stage, self._state, self._expected, len(self._running))

    def _details(self) -> None:
        p = self.progress()
        show_details(p, f"chunks read to the end: {p.chunks_done}/{p.chunks_total} · chunk calls: "
                        f"{p.chunk_calls} done, {p.chunks_running} running · pages: {p.pages:,}")

    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        info = workflow.info()
        state = self._state = inp.state or FlowState(flow_key=f"{info.workflow_id}/{info.run_id}",
                                                     started_at=workflow.now().isoformat())
        self._expected = inp.expected
        try:
            if not state.chunks:
                state.chunks = await self._split(inp)
            unfinished = await self._stream(inp)
        except FailureError:
            # Failed: drop the resume points now (terminated, timed-out and reset flows are swept by workers).
            await cancel_all(self._running.values())
            try:
                await self._finish(state)
            except Exception:  # noqa: BLE001 - the sweep removes them later; the first error is the story
                workflow.logger.warning("could not drop the resume points of %s", state.flow_key)
            raise
        if unfinished:
            self._stage = "continuing as new"
            self._details()
            state.runs += 1
            workflow.continue_as_new(replace(inp, state=state))
        self._stage = "cleaning up"
        await self._finish(state)
        self._stage = "completed"
        self._details()
        return summary_of(inp.extract_strategy, state)

    async def _split(self, inp: ETLFlowInput) -> list[ChunkState]:
        self._stage = "splitting the query into chunks"
        parts = inp.chunk_count or max(1, inp.chunks_in_flight) * 2
        split = await workflow.execute_activity_method(
            StreamingActivities.split_query, SplitInput(inp.query_type, inp.extract_strategy, inp.args, parts, inp.archive_use()),
            start_to_close_timeout=timedelta(minutes=5), retry_policy=ACTIVITY_RETRY,
            summary=f"split into up to {parts} chunks")
        self._meter.step()
        return [ChunkState(index=i, args=args) for i, args in enumerate(split.chunk_args)]

    async def _stream(self, inp: ETLFlowInput) -> bool:
        """Run the chunks through a window of `chunks_in_flight` calls until every chunk is read
        to its end, or the run should hand over; True when chunks are left for the next run."""
        state = self._state
        window = max(1, inp.chunks_in_flight)
        queue = [c.index for c in state.chunks if not c.done]
        running = self._running
        handing_over = False
        while queue or running:
            while queue and len(running) < window and not handing_over:
                index = queue.pop(0)
                running[index] = asyncio.create_task(self._run_chunk(inp, state.chunks[index]))
            self._stage = f"streaming: {len(running)} chunks in flight"
            self._details()
            if not running:
                break
            finished, _ = await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for index, task in list(running.items()):
                if task in finished:
                    del running[index]
                    if not task.result().done:
                        queue.append(index)
            handing_over = handing_over or self._meter.over(inp.history_budget)
        return bool(queue)

    async def _run_chunk(self, inp: ETLFlowInput, chunk: ChunkState) -> ChunkState:
        state = self._state
        try:
            result = await workflow.execute_activity_method(
                StreamingActivities.process_chunk,
                ChunkInput(state.flow_key, inp.query_type, inp.extract_strategy, chunk, inp.pages_per_call,
                           load_mode=inp.load_mode, archive=inp.archive_use()),
                start_to_close_timeout=timedelta(hours=2), heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                retry_policy=ACTIVITY_RETRY, cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"chunk {chunk.index}: {chunk.pages} pages done, up to {inp.pages_per_call} more")
        finally:
            self._meter.step()
        state.counts.add(result.counts.minus(chunk.counts))
        state.batches += result.pages - chunk.pages
        state.chunk_calls += 1
        state.chunks[chunk.index] = result
        return result

    async def _finish(self, state: FlowState) -> None:
        await workflow.execute_activity_method(
            StreamingActivities.finish_stream, state.flow_key, start_to_close_timeout=timedelta(minutes=5),
            retry_policy=CLEANUP_RETRY, summary="drop resume points")
