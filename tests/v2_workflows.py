"""Test-only "version 2" of the two flows, for tests/test_versioning.py: registered under the
same names, with a change version 1's histories cannot replay (a timer before the first
activity) and a new staging format (flow keys, and so batch keys, under `v2/`).

A module of its own because the workflow sandbox re-imports the module a workflow lives in,
and this one must import nothing but workflow code."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from etl.workflows.flow_io import ETLFlowInput, FlowState, FlowSummary

from etl.workflows.batch import ETLFlow
from etl.workflows.streaming import StreamingETLFlow

V2_PREFIX = "v2/"


def _v2_input(inp: ETLFlowInput) -> ETLFlowInput:
    if inp.state:
        return inp
    info = workflow.info()
    return replace(inp, state=FlowState(flow_key=f"{V2_PREFIX}{info.workflow_id}/{info.run_id}",
                                        started_at=workflow.now().isoformat()))


@workflow.defn(name="ETLFlow", versioning_behavior=VersioningBehavior.PINNED)
class ETLFlowV2(ETLFlow):
    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        await workflow.sleep(timedelta(milliseconds=1))  # a command version 1 never issued: not replayable
        return await super().run(_v2_input(inp))


@workflow.defn(name="StreamingETLFlow", versioning_behavior=VersioningBehavior.PINNED)
class StreamingETLFlowV2(StreamingETLFlow):
    @workflow.run
    async def run(self, inp: ETLFlowInput) -> FlowSummary:
        await workflow.sleep(timedelta(milliseconds=1))
        return await super().run(_v2_input(inp))
