"""The dataclasses that cross the fleet workflows' boundaries: `FanOutFlow` and `ScheduledFlow`.

Like `etl.workflows.flow_io`, one dataclass in and one out per workflow, new fields with defaults so old
histories still decode, and no row data: flow arguments, ids and counts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etl.workflows.flow_io import ETLFlowInput, FlowSummary


def child_workflow_id(parent_id: str, key: str) -> str:
    """A fan-out child's workflow id: derived from its parent's, so the UI shows where it came from."""
    return f"{parent_id}--{key}"


@dataclass
class ChildFlow:
    """One flow of a fan-out: everything needed to start it, nothing secret."""

    key: str
    """The flow's own deterministic id (see `etl.launch.plan.flow_id`); the child's workflow id is
    `<parent id>--<key>`."""
    input: ETLFlowInput
    task_queue: str
    streaming: bool = False
    memo: dict[str, Any] = field(default_factory=dict)
    search_attributes: dict[str, str] = field(default_factory=dict)
    """`EtlSource`, `EtlStrategy`, ... by name (see `etl.workflows.search_attributes`)."""
    window_start_arg: str = ""
    """ScheduledFlow: the query argument that takes the window's start (empty: no window)."""
    window_end_arg: str = ""
    window_granularity: str = "datetime"
    """`date` floors both ends of the window to dates (an empty window skips the flow)."""

    @property
    def workflow_name(self) -> str:
        return "StreamingETLFlow" if self.streaming else "ETLFlow"


@dataclass
class ChildOutcome:
    """How one flow of a launch ended: a fan-out child, or a flow `run_queue.py` watched."""

    workflow_id: str
    strategy: str
    status: str
    """`completed` or `failed`."""
    summary: FlowSummary | None = None
    error: str = ""
    duration_s: float = 0.0
    note: str = ""
    """How the launcher came by it: `started`, `attached`, `already completed`, `restarted`."""


@dataclass
class FanOutInput:
    """The flows of a durable launch and how many may run at once."""

    flows: list[ChildFlow]
    concurrency: int = 8
    streaming: bool = False
    """Run every child as StreamingETLFlow, whatever its own flag says."""
    history_budget: int = 4000
    """Continue as new once a run's history passes this many events (or Temporal suggests it)."""
    outcomes: list[ChildOutcome] = field(default_factory=list)
    """Carried across continue-as-new: the children that already ended."""
    started_at: str = ""
    runs: int = 1


@dataclass
class FanOutSummary:
    """The result of a fan-out: every child's outcome, and totals."""

    workflow_id: str
    children: list[ChildOutcome]
    completed: int
    failed: int
    extracted: int
    loaded: int
    rejected: int
    duration_s: float
    runs: int = 1


@dataclass
class FanOutProgress:
    """The answer to FanOutFlow's `progress` query."""

    total: int
    running: int
    completed: int
    failed: int


@dataclass
class ScheduledFlowInput:
    """What a schedule starts on every tick: the flows, and where the first window begins."""

    flows: list[ChildFlow]
    since: str
    """ISO time the first window starts at; later windows start where the last successful one ended."""
    concurrency: int = 8


@dataclass
class ScheduledRun:
    """The result of one scheduled run: its window, and what the fan-out did in it.

    The schedule hands this to the next run as its last completion result, which is how the
    next window starts exactly where this one ended."""

    window_start: str
    window_end: str
    fanout: FanOutSummary | None = None
    skipped: list[str] = field(default_factory=list)
    """Flows whose (date-floored) window was empty this time."""
