"""`ScheduledFlow`: what a Temporal Schedule starts on every tick (see `scripts/schedule.py`).

Each run extracts the window from the previous successful run's end to its own scheduled
time, so consecutive runs neither miss nor repeat anything. The previous end needs no table:
a schedule hands every run the result of the last run that completed (its "last completion
result"), and that result is a `ScheduledRun` carrying `window_end`. The first run starts at
the schedule's `since`. The flows run as one `FanOutFlow` child. When any of them fails this
run fails too, so the schedule keeps the earlier result and the next run covers this window
again (loads are idempotent, so what did load is not doubled).

The chain needs runs one after another: the schedule's overlap policy must not be ALLOW_ALL
(Temporal gives no last completion result then); `schedule.py` refuses it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    VersioningBehavior,
)
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from etl.core.times import parse_time
    from etl.workflows import search_attributes as sa
    from etl.workflows.fleet_io import (
        ChildFlow,
        FanOutInput,
        ScheduledFlowInput,
        ScheduledRun,
    )
    from etl.workflows.windows import windowed_args

from etl.workflows.fanout import FanOutFlow

#: Set by the server on every workflow a schedule starts: the nominal time of the tick.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def _flows(n: int) -> str:
    return f"{n} flow{'' if n == 1 else 's'}"


def window_end() -> datetime:
    """The run's scheduled time (so windows line up with the schedule), or now when started by hand."""
    scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
    return scheduled if scheduled is not None else workflow.now()


def in_window(child: ChildFlow, start: datetime, end: datetime) -> ChildFlow | None:
    """The child with the window applied to its arguments, and so to its memo's query, its
    `EtlQuery` and its summary in the UI; None when its window is empty."""
    args = windowed_args(child.input.args, child.window_start_arg, child.window_end_arg,
                         child.window_granularity, start, end)
    if args is None:
        return None
    if not child.window_start_arg:
        return child
    first, last = args[child.window_start_arg], args[child.window_end_arg]
    shown = f"{first}..{last}"
    attrs = dict(child.search_attributes)
    memo = {**child.memo, "window": shown}
    if isinstance(child.memo.get("query"), dict):
        # Schedules created before windows were left out of the stored input carry a sample window
        # here: the real one replaces it, so no placeholder date is shown anywhere.
        memo["query"] = {**child.memo["query"], child.window_start_arg: first, child.window_end_arg: last}
        attrs["EtlQuery"] = ", ".join(f"{k}={v}" for k, v in memo["query"].items())[:2000]
    else:
        attrs["EtlQuery"] = f"{attrs.get('EtlQuery', '')}, window={shown}".lstrip(", ")
    return replace(child, input=replace(child.input, args=args), search_attributes=attrs, memo=memo)


# AUTO_UPGRADE, as FanOutFlow: it only waits for its fan-out, so it follows the current version
# rather than holding an old one alive; its code must stay replay-compatible (patched).
@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class ScheduledFlow:
    @workflow.run
    async def run(self, inp: ScheduledFlowInput) -> ScheduledRun:
        previous = workflow.get_last_completion_result(ScheduledRun) if workflow.has_last_completion_result() else None
        start = parse_time(previous.window_end) if previous else parse_time(inp.since)
        end = max(start, window_end())
        flows, skipped = [], []
        for child in inp.flows:
            windowed = in_window(child, start, end)
            if windowed is None:
                skipped.append(child.key)
            else:
                flows.append(windowed)
        workflow.set_current_details(f"**window {start.isoformat()} .. {end.isoformat()}**\n\n"
                                     f"{_flows(len(flows))} to run, {len(skipped)} with an empty window")
        if workflow.patched("scheduled-window-memo"):
            # The schedule's memo is the same for every run; this run's own window goes beside it.
            workflow.upsert_memo({"window": f"{start.isoformat()}..{end.isoformat()}",
                                  "skipped": f"{len(skipped)} of {_flows(len(inp.flows))} (empty window)"})
        run = ScheduledRun(start.isoformat(), end.isoformat(), skipped=skipped)
        if not flows:
            return run
        run.fanout = await workflow.execute_child_workflow(
            FanOutFlow.run,
            FanOutInput(flows, concurrency=inp.concurrency),
            id=f"{workflow.info().workflow_id}--fanout",
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ETL_FLOW_KIND, "fanout")]),
            static_summary=f"{_flows(len(flows))}, window {start.isoformat()} .. {end.isoformat()}",
        )
        if run.fanout.failed:
            failed = [c.workflow_id for c in run.fanout.children if c.status != "completed"]
            raise ApplicationError(
                f"{len(failed)} of {_flows(len(flows))} failed in window {start.isoformat()} .. "
                f"{end.isoformat()}: {', '.join(failed)}; the next run covers this window again",
                run, type="ScheduledFlowsFailed", non_retryable=True)
        return run
