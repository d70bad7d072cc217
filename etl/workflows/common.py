"""What both flows share: the retry policies, the window of work in flight, the history meter,
and the progress and summary they report."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Iterable

from temporalio import workflow
from temporalio.common import RetryPolicy

from etl.workflows.flow_io import Counts, FlowProgress, FlowState, FlowSummary

#: Error type names no retry can fix; activities raise them as non-retryable anyway, and the
#: policy lists them too so a failure converted elsewhere is not retried either.
NON_RETRYABLE_TYPES = ["QueryError", "SourceError", "UnknownNameError", "DuplicateNameError",
                       "ConfigError", "StagedBatchMissing"]

#: Transient failures (network, HTTP 5xx/429, a restarting database) are retried with
#: exponential backoff capped at a minute. A source that asks to wait (Retry-After, a rate-limit
#: reset hours away) sets the activity's `next_retry_delay`, which Temporal honours beyond
#: `maximum_interval`, so the whole wait costs one attempt.
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


class Window:
    """At most `limit` units of work in flight (samples-python's sliding window): `await
    window.acquire()` before starting one, `window.release()` when it ends."""

    def __init__(self, limit: int = 1) -> None:
        self.limit = max(1, limit)
        self.busy = 0

    async def acquire(self) -> None:
        await workflow.wait_condition(lambda: self.busy < self.limit)
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1


async def cancel_all(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel the run's in-flight work and wait until each activity has ended (activities are
    called with `WAIT_CANCELLATION_COMPLETED`: at their next committed page, or by their heartbeat
    timeout if their worker is gone), so nothing writes after the cleanup that follows."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class HistoryMeter:
    """When a run should continue as new, counted from the run's own steps.

    Never from `workflow.info().get_current_history_length()`: after a workflow task timed out
    (its worker was killed) a live worker and a later replay see different lengths, and a
    decision taken on it replays differently (a nondeterminism error). A count kept in workflow
    state is the same live and on replay. A step (an activity that completed or failed) costs at
    most six events: scheduled, started, closed, and the workflow task that reacts to it."""

    EVENTS_PER_STEP = 6
    FIXED_EVENTS = 10
    """Start, first workflow task, search attributes, the final task."""

    def __init__(self) -> None:
        self.steps = 0

    def step(self, n: int = 1) -> None:
        self.steps += n

    def over(self, history_budget: int) -> bool:
        """True when the run should hand over to a new one: the server suggests it, or the
        estimate passes `history_budget`."""
        events = self.FIXED_EVENTS + self.EVENTS_PER_STEP * self.steps
        return workflow.info().is_continue_as_new_suggested() or events > history_budget


def progress_of(stage: str, state: FlowState, expected: int | None, running: int = 0) -> FlowProgress:
    """The `progress` query's answer, the same shape for both flows."""
    parts = state.chunks or state.parts
    held = [c.held_note for c in state.chunks if c.held_note]
    return FlowProgress(
        **_counts(state.counts), stage=stage, batches=state.batches, done=stage == "completed",
        expected=expected, chunks_running=running, chunks_done=sum(1 for p in parts if p.done),
        chunks_total=len(parts), chunk_calls=state.chunk_calls, pages=sum(p.pages for p in parts),
        backpressure="; ".join(held[-3:]))


def show_details(progress: FlowProgress, where: str) -> None:
    """The flow's current details in the UI: its stage, where its parts stand, then its counts."""
    workflow.set_current_details(
        f"**{progress.stage}**\n\n{where} · extracted: {progress.extracted:,} · loaded: {progress.loaded:,} · "
        f"updated: {progress.updated:,} · unchanged: {progress.unchanged:,} · rejected: {progress.rejected:,}")


def summary_of(strategy: str, state: FlowState) -> FlowSummary:
    """The flow's result, as it ends."""
    started = datetime.fromisoformat(state.started_at)
    return FlowSummary(
        **_counts(state.counts), workflow_id=workflow.info().workflow_id, strategy=strategy,
        batches=state.batches, duration_s=round((workflow.now() - started).total_seconds(), 3), runs=state.runs,
        backpressure_s=round(sum(c.held_s for c in state.chunks), 3),
        from_archive=sum(p.from_archive for p in state.chunks or state.parts))


def _counts(counts: Counts) -> dict[str, int]:
    return {f.name: getattr(counts, f.name) for f in fields(Counts)}
