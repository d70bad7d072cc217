"""Running many planned flows from the launcher, with bounded concurrency, reusing what already ran.

Ids are deterministic, so `run_flows` asks Temporal about each id first (`describe`): a
completed flow is not started again, its recorded result is reused; a running one is attached
to; a failed, cancelled or terminated one is started afresh.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from etl.launch.plan import FlowPlan, start_flow
from etl.workflows.failure_text import root_message
from etl.workflows.fleet_io import ChildOutcome
from etl.workflows.flow_io import FlowSummary


async def run_flow_once(client: Client, plan: FlowPlan) -> ChildOutcome:
    """Run one planned flow to its end, unless it already completed: then reuse its result."""
    handle = client.get_workflow_handle(plan.workflow_id, result_type=FlowSummary)
    status = None
    try:
        status = (await handle.describe()).status
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    note = "started"
    if status == WorkflowExecutionStatus.COMPLETED:
        note = "already completed"  # not started again: its recorded result is the answer
    else:
        handle, started = await start_flow(client, plan)
        if not started:
            note = "attached"
        elif status is not None and status != WorkflowExecutionStatus.RUNNING:
            note = f"restarted (was {status.name.lower()})"
    strategy = plan.input.extract_strategy
    try:
        summary: FlowSummary = await handle.result()
    except WorkflowFailureError as exc:
        return ChildOutcome(plan.workflow_id, strategy, "failed", error=root_message(exc),
                            duration_s=await _duration(handle), note=note)
    return ChildOutcome(plan.workflow_id, strategy, "completed", summary, duration_s=summary.duration_s, note=note)


async def _duration(handle) -> float:
    try:
        desc = await handle.describe()
    except RPCError:
        return 0.0
    if desc.close_time and desc.start_time:
        return round((desc.close_time - desc.start_time).total_seconds(), 3)
    return 0.0


async def run_flows(client: Client, plans: list[FlowPlan], concurrency: int,
                    on_done: Callable[[ChildOutcome], None] = lambda o: None,
                    runner: Callable[[Client, FlowPlan], Awaitable[ChildOutcome]] = run_flow_once,
                    ) -> list[ChildOutcome]:
    """Run every plan, at most `concurrency` at once; `on_done` sees each outcome as it ends.
    Returns the outcomes in plan order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(plan: FlowPlan) -> ChildOutcome:
        async with gate:
            outcome = await runner(client, plan)
        on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(p) for p in plans)))
