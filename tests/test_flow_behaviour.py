"""What a user sees of a flow beyond its rows: history bounds, continue-as-new, failures that
say what to fix, backpressure, and visibility in Temporal."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from etl.launch.plan import plan_flow, start_flow
from etl.runtime.history import figures
from etl.workflows.flow_io import ETLFlowInput, FlowSummary
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.flows import FlowRunner

MAX_PAYLOAD = 256 * 1024


def ids(db) -> set[str]:
    return set(db.run(lambda cur: (cur.execute(f'SELECT event_id FROM "{db.tables.name}"'),
                                   [r[0] for r in cur.fetchall()])[1]))


async def test_200k_events_with_rejects_stay_within_history_bounds(flow_runner, client, db):
    args = {"count": 200_000, "seed": 31, "bad_rate": 0.01, "page_size": 2_000}
    handle = await flow_runner.start("synthetic-events", args, batch_size=10_000)
    summary = await handle.result()

    expected = expected_event_ids(SyntheticQuery(**args))
    assert ids(db) == expected
    assert summary.extracted == 200_000 == summary.loaded + summary.rejected
    assert db.count_rejects() == summary.rejected == 200_000 - len(expected)
    hist = await figures(client, handle.id)
    assert hist.max_payload_bytes < MAX_PAYLOAD
    assert hist.max_history_events < 10_000

    again = await flow_runner.run("synthetic-events", args, batch_size=10_000)
    assert again["loaded"] == 0 and db.count_events() == len(expected)


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_continue_as_new_carries_the_state(flow_runner, client, db, streaming):
    args = {"count": 30_000, "seed": 32 + streaming, "bad_rate": 0.01, "page_size": 250}
    fields = {"chunk_count": 6, "chunks_in_flight": 2, "pages_per_call": 4} if streaming else {"batch_size": 1_000}
    handle = await flow_runner.start("synthetic-events", args, streaming=streaming, history_budget=60, **fields)
    summary = await handle.result()

    assert summary.runs > 1
    hist = await figures(client, handle.id)
    assert hist.runs == summary.runs
    expected = expected_event_ids(SyntheticQuery(**args))
    assert ids(db) == expected
    assert summary.extracted == 30_000
    assert summary.extracted == summary.loaded + summary.rejected + summary.unchanged


async def test_a_query_the_source_rejects_at_run_time_fails_at_once(client, settings, task_queue):
    # Launchers validate first; this starts the workflow directly, as a stale schedule might.
    async with FlowRunner(client, settings, task_queue):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                "ETLFlow", ETLFlowInput("synthetic", "synthetic-events", {"count": -5}),
                id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=FlowSummary)
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "QueryError" and cause.non_retryable
    assert "synthetic.count: -5 is negative" in cause.message


async def test_unknown_strategy_fails_at_once_naming_the_known_ones(client, settings, task_queue):
    async with FlowRunner(client, settings, task_queue):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                "StreamingETLFlow", ETLFlowInput("synthetic", "synthetic-nope", {}),
                id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=FlowSummary)
    cause = failure.value.cause.cause
    assert cause.type == "UnknownNameError"
    assert "'synthetic-nope'" in cause.message and "synthetic-events" in cause.message


async def test_memory_threshold_slows_the_flow_which_still_completes(client, settings, task_queue, db, caplog):
    tight = settings.replace(memory_limit_mib=1, memory_hold_max_s=0.3)
    args = {"count": 8_000, "seed": 34, "page_size": 500}
    seen_backpressure = ""
    async with FlowRunner(client, tight, task_queue) as runner:
        handle = await runner.start("synthetic-events", args, streaming=True, chunk_count=2, chunks_in_flight=2)
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            try:
                seen_backpressure = seen_backpressure or (await handle.query("progress"))["backpressure"]
            except Exception:  # noqa: BLE001 - not picked up yet
                pass
            await asyncio.wait([result], timeout=0.2)
        summary = result.result()
    assert ids(db) == expected_event_ids(SyntheticQuery(**args))
    assert summary.backpressure_s > 0
    assert "MEMORY_LIMIT_MIB=1" in seen_backpressure
    assert any("backpressure: RSS" in r.getMessage() for r in caplog.records)


async def test_runs_are_findable_by_search_attributes_and_carry_a_memo(client, settings, task_queue):
    async with FlowRunner(client, settings, task_queue):
        plan = plan_flow(settings, "synthetic-events", {"count": 10, "seed": 35}, task_queue=task_queue)
        handle, started = await start_flow(client, plan)
        again, started_again = await start_flow(client, plan)
        await handle.result()
    assert started and not started_again  # the second launch attached to the running flow
    assert plan.workflow_id.startswith("synthetic-events-")
    assert plan_flow(settings, "synthetic-events", {"count": "10", "seed": "35"}).workflow_id == plan.workflow_id
    description = await handle.describe()
    assert (await description.memo())["query"] == {"count": 10, "seed": 35, "bad_rate": 0.0}
    for _ in range(50):  # visibility is eventually consistent
        found = [w.id async for w in client.list_workflows(
            f'EtlSource="synthetic" AND EtlStrategy="synthetic-events" AND WorkflowId="{plan.workflow_id}"')]
        if found:
            break
        await asyncio.sleep(0.2)
    assert found == [plan.workflow_id]
