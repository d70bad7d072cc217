"""What the workflows share: the activity retry policy, the history budget and the summary."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Iterable

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from etl.workflows.flow_io import FlowProgress, FlowState, FlowSummary

#: Error type names no retry can fix; activities raise them as non-retryable anyway, and the
#: policy lists them too so a failure converted elsewhere is not retried either.
NON_RETRYABLE_TYPES = ["QueryError", "SourceError", "UnknownNameError", "DuplicateNameError",
                       "ConfigError", "StagedBatchMissing"]

#: Transient failures (network, HTTP 5xx/429, a restarting database) are retried with
#: exponential backoff capped at a minute; errors retrying cannot fix are listed by type.
#: A source that asks to wait (Retry-After, a rate-limit reset hours away) raises
#: `SourceUnavailable(retry_after_s=...)`, which the activity turns into `next_retry_delay`:
#: Temporal honours it beyond `maximum_interval`, so the whole wait costs one of the 50
#: attempts instead of 50 one-minute retries (about 44 minutes) that fail the flow
#: (tests/sources/test_github.py, the rate-limit reset hours away).
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=50,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

#: Dropping staging after a flow ends: a few quick tries, then the workers' sweep takes over.
CLEANUP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                            maximum_attempts=5)


def cancellation_type() -> ActivityCancellationType:
    """How a run's own activities are cancelled; called once, at the start of the run.

    A cancelled activity is waited for (`WAIT_CANCELLATION_COMPLETED`): the workflow hears how it
    ended. With `TRY_CANCEL` it did not, and an activity ending after its cancellation gave the
    worker a workflow task with nothing in it for the workflow: the SDK completed that task itself,
    without the workflow's PINNED behaviour; the server took that for a change of version and kept
    sending workflow tasks, and while it did, it handed out no activity, not even the failed
    flow's cleanup, so the flow hung for good (tests/reliability/test_staging_cleanup.py, one
    activity slot). Runs started before this keep `TRY_CANCEL`, so their histories replay."""
    if workflow.patched("wait-for-cancelled-activities"):
        return ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    return ActivityCancellationType.TRY_CANCEL


async def cancel_all(tasks: Iterable[asyncio.Task], cancellation: ActivityCancellationType) -> None:
    """Cancel the run's in-flight work and, when its activities are waited for, wait until each
    has ended (at its next committed page, or by its heartbeat timeout if its worker is gone), so
    that nothing writes after the cleanup that follows."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if cancellation == ActivityCancellationType.WAIT_CANCELLATION_COMPLETED:
        await asyncio.gather(*tasks, return_exceptions=True)


def should_continue_as_new(history_budget: int) -> bool:
    """The decision of runs recorded before `HistoryMeter`: kept so their histories replay.
    Unsafe for new runs (see `HistoryMeter`)."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > history_budget


class HistoryMeter:
    """When a run should continue as new: counted from the run's own steps, never from the
    history length the SDK reports.

    `workflow.info().get_current_history_length()` differs between a live worker and a replay
    of the same task when a workflow task timed out before it (a worker was killed): the worker
    that takes over sees a shorter history than its successor replaying it later. A flow that
    reached its budget at that moment continued live and did not on replay (or the reverse), so
    the next worker failed with a nondeterminism error and the flow stalled
    (tests/reliability/test_worker_crashes.py, seed 2). A count kept in workflow state is the
    same live and on replay. Each step (an activity or child workflow that completed) costs at
    most six events: scheduled, started, completed, and the workflow task that reacts to it."""

    EVENTS_PER_STEP = 6
    FIXED_EVENTS = 10
    """Start, first workflow task, search attributes, patch markers, the final task."""

    def __init__(self) -> None:
        self.steps = 0
        self.counted: bool | None = None

    def start(self) -> None:
        """Call once at the start of a run, before its first decision: runs recorded before the
        meter existed (no marker) keep the decision they were recorded with."""
        self.counted = workflow.patched("history-meter")

    def step(self, n: int = 1) -> None:
        self.steps += n

    @property
    def events(self) -> int:
        return self.FIXED_EVENTS + self.EVENTS_PER_STEP * self.steps

    def over(self, history_budget: int) -> bool:
        """True when the run should hand over to a new one: the server suggests it, or the
        estimate passes `history_budget`."""
        if not self.counted:
            return should_continue_as_new(history_budget)
        return workflow.info().is_continue_as_new_suggested() or self.events > history_budget


def progress_of(stage: str, state: FlowState, expected: int | None, running: int = 0) -> FlowProgress:
    """The `progress` query's answer, the same for both flows (chunk fields stay 0 in a batch flow)."""
    held = [c.held_note for c in state.chunks if c.held_note]
    return FlowProgress(
        stage=stage, extracted=state.extracted, rejected=state.rejected, loaded=state.loaded,
        duplicates_skipped=state.duplicates_skipped, batches=state.batches, done=state.done, expected=expected,
        chunks_running=running, chunks_done=sum(1 for c in state.chunks if c.done), chunks_total=len(state.chunks),
        chunk_calls=state.chunk_calls, pages=sum(c.pages for c in state.chunks), backpressure="; ".join(held[-3:]),
    )


def show_details(progress: FlowProgress) -> None:
    """The flow's current details in the UI: its stage, then its counts."""
    chunks = (f"chunks read to the end: {progress.chunks_done}/{progress.chunks_total} · chunk calls: "
              f"{progress.chunk_calls} done, {progress.chunks_running} running · pages: {progress.pages:,} · "
              if progress.chunks_total else f"batches: {progress.batches} · ")
    workflow.set_current_details(
        f"**{progress.stage}**\n\n{chunks}extracted: {progress.extracted:,} · loaded: {progress.loaded:,} · "
        f"rejected: {progress.rejected:,} · already present: {progress.duplicates_skipped:,}")


def summary_of(workflow_id: str, strategy: str, state: FlowState, now: datetime) -> FlowSummary:
    started = datetime.fromisoformat(state.started_at)
    return FlowSummary(
        workflow_id=workflow_id,
        strategy=strategy,
        extracted=state.extracted,
        rejected=state.rejected,
        loaded=state.loaded,
        duplicates_skipped=state.duplicates_skipped,
        batches=state.batches,
        duration_s=round((now - started).total_seconds(), 3),
        runs=state.runs,
        backpressure_s=round(sum(c.held_s for c in state.chunks), 3),
    )
