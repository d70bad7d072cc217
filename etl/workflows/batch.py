"""`ETLFlow`: the batch flow. Extract, transform and load are separate activities per batch,
each visible in the UI and retried on its own.

Batches are claim checks in PostgreSQL (see `etl.store.staging`), so the history holds only
batch keys, cursors and counts, and any worker of the fleet can run any step.

When the source can split its query (`ExtractStrategy.split`) and `partitions` > 1, the query is
split into disjoint parts that are extracted in parallel, each part a chain of batches from its
own cursor; every extracted batch is transformed and loaded while its part extracts the next.
At most `batches_in_flight` batches of the whole flow are between the start of their extract
and the end of their load, whatever the number of parts: that bounds the staging, and lets
a fleet's workers run that many steps of one flow at once. A batch whose staging was lost
(staging tables are UNLOGGED: a PostgreSQL crash empties them) is extracted again from the
cursor it started at, under a new key, and its counts replace the first extraction's.

Flows recorded before parts existed (no `etl-parallel-parts` marker in their history) replay
through `_run_sequential`, the earlier code: one chain, up to `batches_in_flight` batches
overlapping. Both continue as new when Temporal suggests it, carrying their state.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from etl.workflows.activity_contracts import BatchActivities
    from etl.workflows.common import (
        ACTIVITY_RETRY,
        CLEANUP_RETRY,
        HistoryMeter,
        cancel_all,
        cancellation_type,
        progress_of,
        should_continue_as_new,
        show_details,
        summary_of,
    )
    from etl.workflows.flow_io import (
        BatchRef,
        ChunkState,
        ETLFlowInput,
        ExtractBatchInput,
        ExtractBatchResult,
        FlowProgress,
        FlowState,
        FlowSummary,
        SplitInput,
    )

#: How many times a batch whose staging was lost is extracted again before the flow fails.
MAX_REEXTRACTS = 3


# PINNED: a flow finishes on the version it started on. Its batches wait in staging between
# activities and its activities run on its own version's workers, so a deploy can change the
# workflow code, the staging format or the activities without breaking a flow in progress.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class ETLFlow:
    def __init__(self) -> None:
        self._state = FlowState()
        self._stage = "starting"
        self._expected: int | None = None
        self._busy = 0
        """Parallel parts: batches between the start of their extract and the end of their load."""
        self._limit = 1
        self._continuing = False
        self._meter = HistoryMeter()
        self._cancellation = ActivityCancellationType.TRY_CANCEL

    @workflow.query
    def progress(self) -> FlowProgress:
        return progress_of(self._stage, self._state, self._expected, self._busy)

    def _details(self) -> None:
        progress = self.progress()
        if not progress.chunks_total:
            show_details(progress)
            return
        workflow.set_current_details(
            f"**{progress.stage}**\n\nparts read to the end: {progress.chunks_done}/{progress.chunks_total} · "
            f"batches: {progress.batches:,}, {self._busy} in flight (at most {self._limit}) · "
            f"extracted: {progress.extracted:,} · loaded: {progress.loaded:,} · rejected: {progress.rejected:,} · "
            f"already present: {progress.duplicates_skipped:,}")

    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        info = workflow.info()
        self._state = state = inp.state or FlowState(
            flow_key=f"{info.workflow_id}/{info.run_id}", started_at=workflow.now().isoformat())
        self._expected = inp.expected
        self._cancellation = cancellation_type()
        in_flight: list[asyncio.Task] = []
        try:
            return await self._run(inp, state, in_flight)
        except FailureError:
            # Failed (an error no retry fixes, retries used up): leave no staging behind. Terminated,
            # timed-out and reset flows cannot run this; the workers' staging sweep removes theirs.
            if workflow.patched("cleanup-staging-on-failure"):
                await cancel_all(in_flight, self._cancellation)
                try:
                    await workflow.execute_activity_method(
                        BatchActivities.finish_flow, state.flow_key, start_to_close_timeout=timedelta(minutes=5),
                        retry_policy=CLEANUP_RETRY, summary="drop staging of the failed flow")
                except Exception:  # noqa: BLE001 - the sweep removes it later; the first error is the story
                    workflow.logger.warning("could not drop the staging of %s", state.flow_key)
            raise

    async def _run(self, inp: ETLFlowInput, state: FlowState, in_flight: list[asyncio.Task]) -> FlowSummary:
        if workflow.patched("etl-parallel-parts"):
            return await self._run_parts(inp, state, in_flight)
        return await self._run_sequential(inp, state, in_flight)

    async def _run_sequential(self, inp: ETLFlowInput, state: FlowState,
                              in_flight: list[asyncio.Task]) -> FlowSummary:
        """The flow as it ran before parts: kept for the histories of flows started then."""
        while not state.done:
            number = state.batches
            key = f"{state.flow_key}/b{number}"
            self._stage = f"extracting batch {number}"
            self._details()
            extracted = await workflow.execute_activity_method(
                BatchActivities.extract_batch,
                ExtractBatchInput(state.flow_key, key, inp.query_type, inp.extract_strategy, inp.args,
                                  state.cursor, inp.batch_size),
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                retry_policy=ACTIVITY_RETRY,
                summary=f"extract batch {number} (up to {inp.batch_size:,} records)",
            )
            state.cursor, state.done = extracted.next_cursor, extracted.done
            state.batches += 1
            state.extracted += extracted.extracted
            state.rejected += extracted.rejected
            if extracted.staged or extracted.extracted:
                in_flight.append(asyncio.create_task(self._transform_and_load(inp, key, number, extracted.staged)))
            # Keep at most `batches_in_flight` batches between extract and load.
            while len(in_flight) >= max(1, inp.batches_in_flight):
                await in_flight.pop(0)
            if not state.done and should_continue_as_new(inp.history_budget):
                await asyncio.gather(*in_flight)
                self._stage = "continuing as new"
                self._details()
                state.runs += 1
                workflow.continue_as_new(replace(inp, state=state))

        await asyncio.gather(*in_flight)
        return await self._finish(inp, state)

    async def _finish(self, inp: ETLFlowInput, state: FlowState) -> FlowSummary:
        info = workflow.info()
        self._stage = "cleaning up"
        await workflow.execute_activity_method(
            BatchActivities.finish_flow, state.flow_key, start_to_close_timeout=timedelta(minutes=5),
            retry_policy=ACTIVITY_RETRY, summary="drop staging and load ledger")
        self._stage = "completed"
        self._details()
        return summary_of(info.workflow_id, inp.extract_strategy, state, workflow.now())

    async def _transform_and_load(self, inp: ETLFlowInput, key: str, number: int, staged: int) -> None:
        state = self._state
        ref = BatchRef(key, inp.query_type, inp.extract_strategy)
        self._stage = f"transforming batch {number}"
        self._details()
        transformed = await workflow.execute_activity_method(
            BatchActivities.transform_batch, ref, start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s), retry_policy=ACTIVITY_RETRY,
            summary=f"transform batch {number}: {staged:,} records")
        state.rejected += transformed.rejected
        self._stage = f"loading batch {number}"
        self._details()
        loaded = await workflow.execute_activity_method(
            BatchActivities.load_batch, replace(ref, expected=transformed.staged),
            start_to_close_timeout=timedelta(minutes=30), retry_policy=ACTIVITY_RETRY,
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
            summary=f"load batch {number}: {transformed.staged:,} events")
        state.loaded += loaded.inserted
        state.duplicates_skipped += loaded.duplicates_skipped
        self._details()

    # -- parts in parallel ---------------------------------------------------------------------

    async def _run_parts(self, inp: ETLFlowInput, state: FlowState, in_flight: list[asyncio.Task]) -> FlowSummary:
        self._meter.start()
        if not state.chunks:
            if state.batches or state.cursor is not None:
                # Continued from a run of the sequential code: its one chain goes on from its cursor.
                state.chunks = [ChunkState(index=0, args=inp.args, cursor=state.cursor, done=state.done)]
            else:
                state.chunks = await self._split(inp)
        self._limit = max(1, inp.batches_in_flight)
        self._stage = "extracting, transforming and loading"
        parts = [asyncio.create_task(self._extract_part(inp, part, in_flight)) for part in state.chunks
                 if not part.done]
        in_flight.extend(parts)
        await asyncio.gather(*parts)
        if not all(part.done for part in state.chunks):
            self._stage = "continuing as new"
            self._details()
            state.runs += 1
            workflow.continue_as_new(replace(inp, state=state))
        state.done = True
        return await self._finish(inp, state)

    async def _split(self, inp: ETLFlowInput) -> list[ChunkState]:
        """The query's disjoint parts (one, the query itself, when it cannot or need not split)."""
        if inp.partitions <= 1:
            return [ChunkState(index=0, args=inp.args)]
        self._stage = f"splitting the query into up to {inp.partitions} parts"
        self._details()
        split = await workflow.execute_activity_method(
            BatchActivities.split_extract, SplitInput(inp.query_type, inp.extract_strategy, inp.args, inp.partitions),
            start_to_close_timeout=timedelta(minutes=5), retry_policy=ACTIVITY_RETRY,
            summary=f"split into up to {inp.partitions} parts")
        self._meter.step()
        return [ChunkState(index=i, args=args) for i, args in enumerate(split.chunk_args)]

    def _release(self) -> None:
        self._busy -= 1
        if workflow.in_workflow():  # not while an evicted run's coroutines are closed (no workflow loop then)
            self._details()

    async def _extract_part(self, inp: ETLFlowInput, part: ChunkState, in_flight: list[asyncio.Task]) -> None:
        """One part's chain of batches: extract from the part's cursor, hand the batch to a transform and
        load of its own, go on; a slot of `batches_in_flight` is held from extract start to load end."""
        state = self._state
        loads: list[asyncio.Task] = []
        while not part.done and not self._continuing:
            await workflow.wait_condition(lambda: self._busy < self._limit or self._continuing)
            if self._continuing:
                break
            self._busy += 1
            number = state.batches
            state.batches += 1
            start = part.cursor
            try:
                extracted = await self._extract(inp, f"{state.flow_key}/b{number}", number, part.args, start)
            except BaseException:
                self._release()
                raise
            part.cursor, part.done = extracted.next_cursor, extracted.done
            part.extracted += extracted.extracted
            state.extracted += extracted.extracted
            state.rejected += extracted.rejected
            if extracted.staged or extracted.extracted:
                task = asyncio.create_task(self._load_part(inp, part, number, start, extracted))
                loads.append(task)
                in_flight.append(task)
            else:
                self._release()
            if not self._continuing and self._meter.over(inp.history_budget):
                self._continuing = True  # every part stops extracting; what is in flight finishes first
        await asyncio.gather(*loads)

    async def _extract(self, inp: ETLFlowInput, key: str, number: int, args: dict, cursor: str | None
                       ) -> ExtractBatchResult:
        self._details()
        extracted = await workflow.execute_activity_method(
            BatchActivities.extract_batch,
            ExtractBatchInput(self._state.flow_key, key, inp.query_type, inp.extract_strategy, args, cursor,
                              inp.batch_size),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
            retry_policy=ACTIVITY_RETRY, cancellation_type=self._cancellation,
            summary=f"extract batch {number} (up to {inp.batch_size:,} records)",
        )
        self._meter.step()
        return extracted

    async def _load_part(self, inp: ETLFlowInput, part: ChunkState, number: int, start: str | None,
                         extracted: ExtractBatchResult) -> None:
        """Transform and load one batch; if its staging was lost, extract it again and start over."""
        state = self._state
        base = key = extracted.batch_key
        try:
            for again in range(MAX_REEXTRACTS + 1):
                ref = BatchRef(key, inp.query_type, inp.extract_strategy)
                try:
                    # `expected`: the transform checks every staged record is still there.
                    transformed = await workflow.execute_activity_method(
                        BatchActivities.transform_batch, replace(ref, expected=extracted.staged),
                        start_to_close_timeout=timedelta(minutes=30),
                        heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s), retry_policy=ACTIVITY_RETRY,
                        cancellation_type=self._cancellation,
                        summary=f"transform batch {number}: {extracted.staged:,} records")
                    self._meter.step()
                    loaded = await workflow.execute_activity_method(
                        BatchActivities.load_batch, replace(ref, expected=transformed.staged),
                        start_to_close_timeout=timedelta(minutes=30), retry_policy=ACTIVITY_RETRY,
                        heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                        cancellation_type=self._cancellation,
                        summary=f"load batch {number}: {transformed.staged:,} events")
                    self._meter.step()
                except ActivityError as err:
                    self._meter.step()  # the failed activity's events
                    if not _staging_lost(err) or again == MAX_REEXTRACTS:
                        raise
                    workflow.logger.warning("staging of batch %s was lost; extracting it again", key)
                    key = f"{base}r{again + 1}"  # a fresh key, so a fresh resume point
                    redo = await self._extract(inp, key, number, part.args, start)
                    # The new extraction's counts replace the first one's, so the totals stay exact.
                    state.extracted += redo.extracted - extracted.extracted
                    state.rejected += redo.rejected - extracted.rejected
                    part.extracted += redo.extracted - extracted.extracted
                    extracted = redo
                    continue
                state.rejected += transformed.rejected
                state.loaded += loaded.inserted
                state.duplicates_skipped += loaded.duplicates_skipped
                part.rejected += extracted.rejected + transformed.rejected
                part.loaded += loaded.inserted
                part.duplicates_skipped += loaded.duplicates_skipped
                return
        finally:
            self._release()


def _staging_lost(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == "StagedBatchMissing"
