"""Submitting planned flows as one durable `FanOutFlow` (`run_queue.py --durable`).

The fan-out's id is derived from the set of flows (`fanout-<hash>`), so submitting the same
file again attaches to the running fan-out, or, once it completed, reuses its result instead
of starting it again, just as `etl.launch.flow_file` does for single flows. When that completed fan-out
had failed children, a new run of it retries only those, carrying the others' outcomes over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from etl.launch.flow_file import FlowFileError
from etl.launch.plan import FlowPlan
from etl.launch.report import plural
from etl.workflows import search_attributes as sa
from etl.workflows.fleet_io import (
    ChildFlow,
    FanOutInput,
    FanOutSummary,
    child_workflow_id,
)

#: Workflow inputs stay well under Temporal's 256 KiB payload guidance.
MAX_INPUT_BYTES = 200 * 1024


def child_of(plan: FlowPlan) -> ChildFlow:
    """A planned flow as a fan-out child (its id becomes the child's key)."""
    attrs = {pair.key.name: str(pair.value) for pair in plan.search_attributes()}
    return ChildFlow(key=plan.workflow_id, input=plan.input, task_queue=plan.task_queue,
                     streaming=plan.streaming, memo=plan.memo(), search_attributes=attrs)


def fanout_id(plans: list[FlowPlan]) -> str:
    digest = hashlib.sha256("|".join(sorted(p.workflow_id for p in plans)).encode()).hexdigest()[:10]
    return f"fanout-{len(plans)}-{digest}"


@dataclass
class FanOutPlan:
    workflow_id: str
    task_queue: str
    input: FanOutInput

    def memo(self) -> dict[str, Any]:
        strategies = sorted({c.input.extract_strategy for c in self.input.flows})
        return {"flows": len(self.input.flows), "strategies": strategies, "concurrency": self.input.concurrency}

    def search_attributes(self) -> TypedSearchAttributes:
        memo = self.memo()
        return TypedSearchAttributes([
            SearchAttributePair(sa.ETL_FLOW_KIND, "fanout"),
            SearchAttributePair(sa.ETL_QUERY, f"{plural(memo['flows'], 'flow')}: {', '.join(memo['strategies'])}"[:2000]),
            *sa.shared_by(self.input.flows),
        ])


def plan_fanout(client: Client, plans: list[FlowPlan], *, concurrency: int, task_queue: str,
                source: str = "flows") -> FanOutPlan:
    """One fan-out over `plans`; refuses one whose input would be too large for a workflow payload."""
    inp = FanOutInput([child_of(p) for p in plans], concurrency=concurrency)
    size = len(client.data_converter.payload_converter.to_payloads([inp])[0].data)
    if size > MAX_INPUT_BYTES:
        raise FlowFileError(source, f"{len(plans)} flows make a fan-out input of {size // 1024} KiB, above the "
                                    f"{MAX_INPUT_BYTES // 1024} KiB a workflow input may use; split the file, "
                                    "or launch without --durable")
    return FanOutPlan(fanout_id(plans), task_queue, inp)


async def submit_fanout(client: Client, plan: FanOutPlan) -> tuple[WorkflowHandle, str]:
    """Start the fan-out, attach to it while it runs, reuse it once completed, or retry the
    children that failed in it. Returns (handle, note): `started`, `attached`, `already
    completed` or `retrying N failed flow(s)`."""
    handle = client.get_workflow_handle(plan.workflow_id, result_type=FanOutSummary)
    inp, note = plan.input, "started"
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            previous: FanOutSummary = await handle.result()
            if not previous.failed:
                return handle, "already completed"
            inp, note = retry_failed(plan, previous), f"retrying {plural(previous.failed, 'failed flow')}"
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        handle = await client.start_workflow(
            "FanOutFlow", inp, id=plan.workflow_id, task_queue=plan.task_queue,
            memo=plan.memo(), search_attributes=plan.search_attributes(),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL, result_type=FanOutSummary,
            static_summary=f"fan-out of {plural(len(plan.input.flows), 'flow')}, {plan.input.concurrency} at a time")
        return handle, note
    except WorkflowAlreadyStartedError:
        return handle, "attached"


def retry_failed(plan: FanOutPlan, previous: FanOutSummary) -> FanOutInput:
    """The fan-out's input for a run that starts only the children that failed last time."""
    done = {o.workflow_id: o for o in previous.children if o.status == "completed"}
    flows = [c for c in plan.input.flows if child_workflow_id(plan.workflow_id, c.key) not in done]
    return replace(plan.input, flows=flows, outcomes=list(done.values()))


async def watch_fanout(handle: WorkflowHandle, on_progress, poll_s: float = 1.0) -> FanOutSummary:
    """Wait for the fan-out's summary, calling `on_progress(FanOutProgress)` as it advances."""
    import asyncio

    from etl.workflows.fleet_io import FanOutProgress

    result = asyncio.ensure_future(handle.result())
    while not result.done():
        try:
            on_progress(await handle.query("progress", result_type=FanOutProgress))
        except Exception:  # noqa: BLE001 - between runs (continue-as-new) a query can fail; the next poll works
            pass
        await asyncio.wait([result], timeout=poll_s)
    return result.result()
