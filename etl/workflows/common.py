"""What the workflows share: the activity retry policy, the history budget and the summary."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from etl.activities.batch import NON_RETRYABLE_TYPES
from etl.workflows.flow_io import FlowState, FlowSummary

#: Transient failures (network, HTTP 5xx/429, a restarting database) are retried with
#: exponential backoff capped at a minute; errors retrying cannot fix are listed by type.
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=50,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

def should_continue_as_new(history_budget: int) -> bool:
    """Continue as new well before the 10,000-event mark, whatever the server suggests."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > history_budget


def expected_records(args: dict[str, Any]) -> int | None:
    """The total a source announces in its arguments (synthetic `count`), for progress bars."""
    count = args.get("count")
    try:
        return int(count) if count is not None else None
    except (TypeError, ValueError):
        return None


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
