"""`ETLFlow`: the batch flow. Extract, transform and load are separate activities per batch,
each visible in the UI and retried on its own.

Batches are claim checks in PostgreSQL (see `etl.store.staging`), so the history holds only
batch keys, cursors and counts. Extraction is sequential (each batch starts at the
previous one's cursor), but while batch N is transformed and loaded, batch N+1 is
already being extracted: up to `batches_in_flight` batches overlap. The flow continues
as new when Temporal suggests it, carrying its state.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from etl.workflows.activity_contracts import BatchActivities
    from etl.workflows.common import (
        ACTIVITY_RETRY,
        progress_of,
        should_continue_as_new,
        show_details,
        summary_of,
    )
    from etl.workflows.flow_io import (
        BatchRef,
        ETLFlowInput,
        ExtractBatchInput,
        FlowProgress,
        FlowState,
        FlowSummary,
    )


@workflow.defn
class ETLFlow:
    def __init__(self) -> None:
        self._state = FlowState()
        self._stage = "starting"
        self._expected: int | None = None

    @workflow.query
    def progress(self) -> FlowProgress:
        return progress_of(self._stage, self._state, self._expected)

    def _details(self) -> None:
        show_details(self.progress())

    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        info = workflow.info()
        self._state = state = inp.state or FlowState(
            flow_key=f"{info.workflow_id}/{info.run_id}", started_at=workflow.now().isoformat())
        self._expected = inp.expected
        in_flight: list[asyncio.Task] = []

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
