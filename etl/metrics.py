"""The fleet's own counters, on `/metrics` in Prometheus format (see `etl.runtime.health`).

A leaf module at the top of `etl`, because every layer counts its work: activities count
records and attempts, the store counts staging sweeps, the runtime serves the page. Built on
`prometheus_client` (thread-safe; sync activities bump counters from their thread pool) in a
registry of our own, so the page holds exactly these series and the SDK's. Activities count
with one line, e.g. `metrics.batch_loaded(counts.inserted, counts.staged - counts.inserted)`;
attempts started, completed and failed are counted by `ActivityMetricsInterceptor`, which
`etl.runtime.worker.build_worker` gives every worker.
"""

from __future__ import annotations

from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

prometheus_client.disable_created_metrics()  # `_created` series double the page for nothing we alert on

REGISTRY = CollectorRegistry(auto_describe=True)


def _counter(name: str, help: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, help, labels, registry=REGISTRY)


RECORDS_EXTRACTED = _counter("etl_records_extracted_total", "Raw records read from sources.")
EVENTS_LOADED = _counter("etl_events_loaded_total", "Events inserted into the events table (new rows only).")
EVENTS_UPDATED = _counter("etl_events_updated_total", "Rows replaced by a changed version (upsert and history load modes).")
EVENTS_UNCHANGED = _counter("etl_events_unchanged_total", "Events the table already held (as they were, or at all in "
                            "insert mode): not written.")
EVENTS_REJECTED = _counter("etl_events_rejected_total", "Records that could not become events (written as rejects).")
BATCHES_LOADED = _counter("etl_batches_loaded_total", "ETLFlow batches loaded into the events table.")
CHUNK_PAGES = _counter("etl_chunk_pages_total", "StreamingETLFlow pages committed by chunk activities.")
CHUNK_CALLS = _counter("etl_chunk_calls_total", "StreamingETLFlow chunk activity calls that returned.")
ACTIVITIES_STARTED = _counter("etl_activities_started_total", "Activity attempts started on this worker.", ("activity",))
ACTIVITIES_COMPLETED = _counter("etl_activities_completed_total", "Activity attempts that returned.", ("activity",))
ACTIVITIES_FAILED = _counter("etl_activities_failed_total", "Activity attempts that raised (each retry counts).",
                             ("activity",))
SOURCE_REQUESTS = _counter("etl_source_requests_total", "Requests sent to a source.", ("source",))
SOURCE_BUDGET_WAIT = _counter("etl_source_budget_wait_seconds_total",
                              "Seconds requests waited for their turn in the source's budget, shared by the fleet.",
                              ("source",))
SOURCE_RATE_LIMITED = _counter("etl_source_rate_limited_total",
                               "Answers of a source that said its budget was spent (429, rate-limit 403).", ("source",))
STAGING_SWEPT = _counter("etl_staging_rows_swept_total", "Staging rows of ended or abandoned flows removed.")
STAGING_BYTES = Gauge("etl_staging_bytes", "Bytes the staging tables hold, as last measured.", registry=REGISTRY)
ARCHIVE_BYTES = Gauge("etl_archive_bytes", "Bytes the source archive holds, as last measured.", registry=REGISTRY)
ARCHIVE_ANSWERS = _counter("etl_archive_answers_total", "Source answers kept in the archive (archived) or read from "
                           "it instead of the source (replayed).", ("use",))
ARCHIVE_SWEPT = _counter("etl_archive_rows_swept_total", "Archived answers removed after ARCHIVE_RETENTION_DAYS.")


def value(counter: Counter, **labels: str) -> float:
    """A counter's current value (tests and reports)."""
    return REGISTRY.get_sample_value(counter._name + "_total", labels or None) or 0.0  # noqa: SLF001


def batch_extracted(records: int, unstorable: int) -> None:
    """ETLFlow extract_batch: records read, and those rejected because they are not even JSON."""
    RECORDS_EXTRACTED.inc(records)
    EVENTS_REJECTED.inc(unstorable)


def batch_loaded(inserted: int, updated: int, unchanged: int) -> None:
    """ETLFlow load_batch: one batch loaded."""
    EVENTS_LOADED.inc(inserted)
    EVENTS_UPDATED.inc(updated)
    EVENTS_UNCHANGED.inc(unchanged)
    BATCHES_LOADED.inc()


def page_committed(records: int, inserted: int, updated: int, unchanged: int, rejected: int) -> None:
    """StreamingETLFlow process_chunk: one page extracted, transformed and loaded."""
    RECORDS_EXTRACTED.inc(records)
    EVENTS_LOADED.inc(inserted)
    EVENTS_UPDATED.inc(updated)
    EVENTS_UNCHANGED.inc(unchanged)
    EVENTS_REJECTED.inc(rejected)
    CHUNK_PAGES.inc()


def archive_used(kept: int, answered: int) -> None:
    """An activity's read through the source archive: answers kept, answers read from it."""
    ARCHIVE_ANSWERS.labels(use="archived").inc(kept)
    ARCHIVE_ANSWERS.labels(use="replayed").inc(answered)


def render() -> str:
    """Every series in Prometheus text exposition format."""
    return prometheus_client.generate_latest(REGISTRY).decode()


class _CountingInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = getattr(input.fn, "__name__", "unknown")
        ACTIVITIES_STARTED.labels(activity=name).inc()
        try:
            result = await self.next.execute_activity(input)
        except Exception:
            ACTIVITIES_FAILED.labels(activity=name).inc()
            raise
        ACTIVITIES_COMPLETED.labels(activity=name).inc()
        return result


class ActivityMetricsInterceptor(Interceptor):
    """Counts activity attempts by activity name (a worker interceptor)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountingInbound(next)
