"""`ETLFlow`: the batch flow. Extract, transform and load are separate activities per batch,
each visible in the UI and retried on its own.

Batches are claim checks in PostgreSQL (`etl.store.staging`), so the history holds only batch
keys, cursors and counts, and any worker of the fleet can run any step. Three units:

- the parts: the query split into disjoint parts (when the source can split and `partitions`
  > 1), each read as a chain of batches from its own committed cursor (`_read_part`);
- the window: at most `batches_in_flight` batches of the whole flow between the start of their
  extract and the end of their load, whatever the number of parts, which bounds the staging;
- one batch's pipeline: transform, then load (`_transform_and_load`). A batch whose staging
  was lost (the tables are UNLOGGED: a PostgreSQL crash empties them) is extracted again from
  the cursor it started at, under a new key, and its counts replace the first extraction's.

The run continues as new when its history nears the budget, carrying its parts' cursors.
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
        Window,
        cancel_all,
        progress_of,
        show_details,
        summary_of,
    )
    from etl.workflows.flow_io import (
        BatchRef,
        Counts,
        ETLFlowInput,
        ExtractBatchInput,
        ExtractBatchResult,
        FlowProgress,
        FlowState,
        FlowSummary,
        Part,
        SplitInput,
    )

#: How many times a batch whose staging was lost is extracted again before the flow fails.
MAX_REEXTRACTS = 3
_CANCEL = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


# PINNED: a flow finishes on the build it started on. Its batches wait in staging between
# activities and its activities run on its own build's workers, so a deploy can change the
# workflow code, the staging format or the activities freely.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class ETLFlow:
    def __init__(self) -> None:
        self._state = FlowState()
        self._stage = "starting"
        self._expected: int | None = None
        self._window = Window()
        self._meter = HistoryMeter()
        self._handing_over = False
        """Set once the run should continue as new: the parts stop starting batches."""
        self._work: list[asyncio.Task] = []
        """Every part and batch task of this run, cancelled if the flow fails."""

    @workflow.query
    def progress(self) -> FlowProgress:
        return progress_of(self._stage, self._state, self._expected, self._window.busy)

    def _details(self) -> None:
        progress = self.progress()
        where = (f"parts read to the end: {progress.chunks_done}/{progress.chunks_total} · batches: "
                 f"{progress.batches:,}, {self._window.busy} in flight (at most {self._window.limit})")
        show_details(progress, where)

    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        info = workflow.info()
        state = self._state = inp.state or FlowState(flow_key=f"{info.workflow_id}/{info.run_id}",
                                                     started_at=workflow.now().isoformat())
        self._expected = inp.expected
        self._window.limit = max(1, inp.batches_in_flight)
        try:
            if not state.parts:
                state.parts = await self._split(inp)
            self._stage = "extracting, transforming and loading"
            parts = [asyncio.create_task(self._read_part(inp, part)) for part in state.parts if not part.done]
            self._work.extend(parts)
            await asyncio.gather(*parts)
        except FailureError:
            # Failed (an error no retry fixes, retries used up): leave no staging behind. Terminated,
            # timed-out and reset flows cannot run this; the workers' staging sweep removes theirs.
            await cancel_all(self._work)
            await self._drop_staging(state, "drop staging of the failed flow", CLEANUP_RETRY, quiet=True)
            raise
        if not all(part.done for part in state.parts):
            self._stage = "continuing as new"
            self._details()
            state.runs += 1
            workflow.continue_as_new(replace(inp, state=state))
        self._stage = "cleaning up"
        await self._drop_staging(state, "drop staging and load ledger", ACTIVITY_RETRY)
        self._stage = "completed"
        self._details()
        return summary_of(inp.extract_strategy, state)

    async def _drop_staging(self, state: FlowState, summary: str, retry, quiet: bool = False) -> None:
        try:
            await workflow.execute_activity_method(
                BatchActivities.finish_flow, state.flow_key, start_to_close_timeout=timedelta(minutes=5),
                retry_policy=retry, summary=summary)
        except Exception:  # noqa: BLE001 - after a failure, the sweep removes it later: the first error is the story
            if not quiet:
                raise
            workflow.logger.warning("could not drop the staging of %s", state.flow_key)

    async def _split(self, inp: ETLFlowInput) -> list[Part]:
        """The query's disjoint parts (one, the query itself, when it cannot or need not split)."""
        if inp.partitions <= 1 and not (inp.archive or inp.replay):  # the archive keeps (or gives) the split
            return [Part(index=0, args=inp.args)]
        self._stage = f"splitting the query into up to {inp.partitions} parts"
        self._details()
        split = await workflow.execute_activity_method(
            BatchActivities.split_extract, SplitInput(inp.query_type, inp.extract_strategy, inp.args, inp.partitions,
                                                      inp.archive_use()),
            start_to_close_timeout=timedelta(minutes=5), retry_policy=ACTIVITY_RETRY,
            summary=f"split into up to {inp.partitions} parts")
        self._meter.step()
        return [Part(index=i, args=args) for i, args in enumerate(split.chunk_args)]

    # -- the parts and the window ----------------------------------------------------------------

    async def _read_part(self, inp: ETLFlowInput, part: Part) -> None:
        """One part's chain of batches: extract from the part's cursor, hand the batch to its own
        transform and load, go on. A slot of the window is held from extract start to load end."""
        state = self._state
        batches: list[asyncio.Task] = []
        while not part.done and not self._handing_over:
            await self._window.acquire()
            if self._handing_over:
                self._window.release()
                break
            number = state.batches
            state.batches += 1
            start = part.cursor
            try:
                extracted = await self._extract(inp, f"{state.flow_key}/b{number}", number, part.args, start)
            except BaseException:
                self._release()
                raise
            part.cursor, part.done = extracted.next_cursor, extracted.done
            part.from_archive += extracted.from_archive
            self._count(part, extracted.counts)
            if extracted.staged or extracted.counts.extracted:
                batch = asyncio.create_task(self._transform_and_load(inp, part, number, start, extracted))
                batches.append(batch)
                self._work.append(batch)
            else:
                self._release()
            if self._meter.over(inp.history_budget):
                self._handing_over = True  # every part stops; the batches in flight finish first
        await asyncio.gather(*batches)

    def _release(self) -> None:
        self._window.release()
        if workflow.in_workflow():  # not while an evicted run's coroutines are closed (no workflow loop then)
            self._details()

    def _count(self, part: Part, counts: Counts) -> None:
        part.counts.add(counts)
        self._state.counts.add(counts)

    # -- one batch ------------------------------------------------------------------------------

    async def _extract(self, inp: ETLFlowInput, key: str, number: int, args: dict, cursor: str | None
                       ) -> ExtractBatchResult:
        self._details()
        try:
            return await workflow.execute_activity_method(
                BatchActivities.extract_batch,
                ExtractBatchInput(self._state.flow_key, key, inp.query_type, inp.extract_strategy, args, cursor,
                                  inp.batch_size, inp.archive_use()),
                start_to_close_timeout=timedelta(hours=2), heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
                retry_policy=ACTIVITY_RETRY, cancellation_type=_CANCEL,
                summary=f"extract batch {number} (up to {inp.batch_size:,} records)")
        finally:
            self._meter.step()

    async def _step(self, inp: ETLFlowInput, activity, ref: BatchRef, summary: str):
        try:
            return await workflow.execute_activity_method(
                activity, ref, start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s), retry_policy=ACTIVITY_RETRY,
                cancellation_type=_CANCEL, summary=summary)
        finally:
            self._meter.step()

    async def _transform_and_load(self, inp: ETLFlowInput, part: Part, number: int, start: str | None,
                                  extracted: ExtractBatchResult) -> None:
        """Transform and load one batch; if its staging was lost, extract it again and start over."""
        first_key = key = extracted.batch_key
        try:
            for again in range(MAX_REEXTRACTS + 1):
                ref = BatchRef(key, inp.query_type, inp.extract_strategy, load_mode=inp.load_mode)
                try:
                    # `expected`: each step checks the batch still holds everything the step before gave it.
                    transformed = await self._step(inp, BatchActivities.transform_batch,
                                                   replace(ref, expected=extracted.staged),
                                                   f"transform batch {number}: {extracted.staged:,} records")
                    loaded = await self._step(inp, BatchActivities.load_batch,
                                              replace(ref, expected=transformed.staged),
                                              f"load batch {number}: {transformed.staged:,} events")
                except ActivityError as err:
                    if not _staging_lost(err) or again == MAX_REEXTRACTS:
                        raise
                    workflow.logger.warning("staging of batch %s was lost; extracting it again", key)
                    key = f"{first_key}r{again + 1}"  # a fresh key, so a fresh resume point
                    redo = await self._extract(inp, key, number, part.args, start)
                    self._count(part, redo.counts.minus(extracted.counts))  # the new counts replace the first
                    part.from_archive += redo.from_archive
                    extracted = redo
                    continue
                self._count(part, Counts(rejected=transformed.rejected, loaded=loaded.inserted,
                                         updated=loaded.updated, unchanged=loaded.unchanged))
                return
        finally:
            self._release()


def _staging_lost(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == "StagedBatchMissing"
