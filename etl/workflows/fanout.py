"""`FanOutFlow`: many flows launched as children of one durable workflow.

`run_queue.py --durable` and every scheduled run submit one of these instead of N flows, so a
big launch (every member of a team x every flow) goes on when the launcher's machine goes
away. A sliding window keeps `concurrency` children running. A child that fails is recorded
with its reason and the rest go on: the fan-out itself completes, and its summary lists every
child. Child ids are `<fan-out id>--<flow id>`, so they are deterministic and show their
parent in the UI. Before its history grows large it lets the running children finish and
continues as new with the ones still queued.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from temporalio import workflow
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    VersioningBehavior,
)
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from etl.workflows import search_attributes as sa
    from etl.workflows.common import HistoryMeter
    from etl.workflows.failure_text import root_message
    from etl.workflows.fleet_io import (
        ChildFlow,
        ChildOutcome,
        FanOutInput,
        FanOutProgress,
        FanOutSummary,
        child_workflow_id,
    )
    from etl.workflows.flow_io import FlowSummary

from etl.workflows.batch import ETLFlow
from etl.workflows.streaming import StreamingETLFlow

_KEYS = {key.name: key for key in sa.ALL}


def child_search_attributes(child: ChildFlow, streaming: bool) -> TypedSearchAttributes:
    """The child's search attributes from their names; the flow kind follows how it really runs."""
    values = dict(child.search_attributes, EtlFlowKind="streaming" if streaming else "batch")
    return TypedSearchAttributes([SearchAttributePair(_KEYS[name], value)
                                  for name, value in values.items() if name in _KEYS and value])


# AUTO_UPGRADE: a fan-out can outlive many deploys (a whole team x every flow), and pinning it
# would keep its old workers running until the last child ends. It does no work itself: it
# starts children (each PINNED to the version current when it starts) and collects results.
# Its own code is small and changes rarely; a change must replay its recorded histories
# (patch with `workflow.patched`, see README "Changing a workflow safely").
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class FanOutFlow:
    def __init__(self) -> None:
        self._total = 0
        self._running = 0
        self._outcomes: list[ChildOutcome] = []

    @workflow.query
    def progress(self) -> FanOutProgress:
        failed = sum(1 for o in self._outcomes if o.status != "completed")
        return FanOutProgress(total=self._total, running=self._running,
                              completed=len(self._outcomes) - failed, failed=failed)

    def _details(self) -> None:
        p = self.progress()
        workflow.set_current_details(f"**{p.completed + p.failed} of {p.total} flows done**\n\n"
                                     f"running: {p.running} · completed: {p.completed} · failed: {p.failed}")

    @workflow.run
    async def run(self, inp: FanOutInput) -> FanOutSummary:
        started_at = inp.started_at or workflow.now().isoformat()
        self._outcomes = list(inp.outcomes)
        self._total = len(inp.outcomes) + len(inp.flows)
        queue = list(inp.flows)
        if workflow.patched("fanout-source-strategy-attributes"):
            self._mark_source_and_strategy(inp)
        running: list[asyncio.Task] = []
        continuing = False
        meter = _FanOutMeter()
        while queue or running:
            while queue and len(running) < max(1, inp.concurrency) and not continuing:
                running.append(asyncio.create_task(self._run_child(inp, queue.pop(0))))
            self._running = len(running)
            self._details()
            done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running = [task for task in running if task not in done]
            self._outcomes += [task.result() for task in done]
            meter.step(len(done))
            if queue and not continuing and meter.over(inp.history_budget):
                continuing = True  # start no more; let the running children end, then start afresh
            if continuing and not running:
                break
        self._running = 0
        self._details()
        if queue:
            workflow.continue_as_new(replace(inp, flows=queue, outcomes=self._outcomes,
                                             started_at=started_at, runs=inp.runs + 1))
        return self._summary(inp, started_at)

    @staticmethod
    def _mark_source_and_strategy(inp: FanOutInput) -> None:
        """Give a fresh fan-out started without them (a scheduled run's) the `EtlSource` and
        `EtlStrategy` its children share. A later run of it (continue-as-new, a retry) has them
        already, from its first run or from the launcher, which knows every child."""
        info = workflow.info().typed_search_attributes
        if inp.outcomes or info.get(sa.ETL_SOURCE) is not None or info.get(sa.ETL_STRATEGY) is not None:
            return
        shared = sa.shared_by(inp.flows)
        if shared:
            workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in shared])

    async def _run_child(self, inp: FanOutInput, child: ChildFlow) -> ChildOutcome:
        child_id = child_workflow_id(workflow.info().workflow_id, child.key)
        streaming = inp.streaming or child.streaming
        began = workflow.now()
        try:
            summary: FlowSummary = await workflow.execute_child_workflow(
                StreamingETLFlow.run if streaming else ETLFlow.run,
                child.input,
                id=child_id,
                task_queue=child.task_queue,
                memo=child.memo,
                search_attributes=child_search_attributes(child, streaming),
                static_summary=f"{child.input.extract_strategy}: {child.memo.get('query', child.input.args)}",
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError) as exc:
            # One flow's failure is data for the summary, not a reason to stop the others.
            return ChildOutcome(child_id, child.input.extract_strategy, "failed", error=root_message(exc),
                                duration_s=(workflow.now() - began).total_seconds())
        return ChildOutcome(child_id, child.input.extract_strategy, "completed", summary,
                            duration_s=summary.duration_s)

    def _summary(self, inp: FanOutInput, started_at: str) -> FanOutSummary:
        children = sorted(self._outcomes, key=lambda o: o.workflow_id)
        done = [o.summary for o in children if o.summary is not None]
        return FanOutSummary(
            workflow_id=workflow.info().workflow_id,
            children=children,
            completed=len(done),
            failed=len(children) - len(done),
            extracted=sum(s.extracted for s in done),
            loaded=sum(s.loaded for s in done),
            rejected=sum(s.rejected for s in done),
            duration_s=round((workflow.now() - datetime.fromisoformat(started_at)).total_seconds(), 3),
            runs=inp.runs,
        )


class _FanOutMeter(HistoryMeter):
    """FanOutFlow auto-upgrades, so it replays histories of earlier builds: runs recorded before
    the meter (no `history-meter` marker) keep deciding by the history length they were recorded with."""

    def __init__(self) -> None:
        super().__init__()
        self.counted = workflow.patched("history-meter")

    def over(self, history_budget: int) -> bool:
        if self.counted:
            return super().over(history_budget)
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > history_budget
