"""The worker's own counters, shown on `/metrics` in Prometheus text format (see `etl.runtime.health`).

Counters are process-wide and thread-safe: sync activities run on a thread pool and bump
them from there. Activities count their own work with one line each, e.g.

    from etl import metrics
    metrics.batch_loaded(counts.inserted, counts.staged - counts.inserted)

Started, completed and failed activities are counted without touching activity code, by
`ActivityMetricsInterceptor`, which `etl.runtime.worker.build_worker` gives every worker.
"""

from __future__ import annotations

import threading
from typing import Any

from temporalio import client as temporal_client
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class Counter:
    """A monotonically rising count, optionally split by label values."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name = name
        self.help = help
        self.labels = labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {self.name} cannot go down (inc by {amount})")
        key = tuple(str(labels.get(name, "")) for name in self.labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        key = tuple(str(labels.get(name, "")) for name in self.labels)
        with self._lock:
            return self._values.get(key, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.labels:
            items = [((), 0)]  # an unlabelled counter shows 0 before its first increment, so alerts see it
        for key, value in items:
            tags = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(self.labels, key))
            lines.append(f"{self.name}{{{tags}}} {value:g}" if tags else f"{self.name} {value:g}")
        return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


REGISTRY: list[Counter] = []


def counter(name: str, help: str, labels: tuple[str, ...] = ()) -> Counter:
    """Create and register a counter; names are unique."""
    if any(c.name == name for c in REGISTRY):
        raise ValueError(f"counter {name!r} is already registered")
    made = Counter(name, help, labels)
    REGISTRY.append(made)
    return made


RECORDS_EXTRACTED = counter("etl_records_extracted_total", "Raw records read from sources.")
EVENTS_LOADED = counter("etl_events_loaded_total", "Events inserted into the events table (new rows only).")
EVENTS_DUPLICATE = counter("etl_events_duplicate_total", "Events skipped because the table already held them.")
EVENTS_REJECTED = counter("etl_events_rejected_total", "Records that could not become events (written as rejects).")
BATCHES_LOADED = counter("etl_batches_loaded_total", "ETLFlow batches loaded into the events table.")
CHUNK_PAGES = counter("etl_chunk_pages_total", "StreamingETLFlow pages committed by chunk activities.")
CHUNK_CALLS = counter("etl_chunk_calls_total", "StreamingETLFlow chunk activity calls that returned.")
ACTIVITIES_STARTED = counter("etl_activities_started_total", "Activity attempts started on this worker.", ("activity",))
ACTIVITIES_COMPLETED = counter("etl_activities_completed_total", "Activity attempts that returned.", ("activity",))
ACTIVITIES_FAILED = counter("etl_activities_failed_total", "Activity attempts that raised (each retry counts).",
                            ("activity",))


def batch_extracted(records: int, unstorable: int) -> None:
    """ETLFlow extract_batch: records read, and those rejected because they are not even JSON."""
    RECORDS_EXTRACTED.inc(records)
    EVENTS_REJECTED.inc(unstorable)


def batch_loaded(inserted: int, duplicates: int) -> None:
    """ETLFlow load_batch: one batch loaded."""
    EVENTS_LOADED.inc(inserted)
    EVENTS_DUPLICATE.inc(duplicates)
    BATCHES_LOADED.inc()


def page_committed(records: int, inserted: int, duplicates: int, rejected: int) -> None:
    """StreamingETLFlow process_chunk: one page extracted, transformed and loaded."""
    RECORDS_EXTRACTED.inc(records)
    EVENTS_LOADED.inc(inserted)
    EVENTS_DUPLICATE.inc(duplicates)
    EVENTS_REJECTED.inc(rejected)
    CHUNK_PAGES.inc()


def render() -> str:
    """Every counter in Prometheus text exposition format."""
    return "\n".join(line for c in REGISTRY for line in c.render()) + "\n"


class _CountingInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = getattr(input.fn, "__name__", "unknown")
        ACTIVITIES_STARTED.inc(activity=name)
        try:
            result = await self.next.execute_activity(input)
        except Exception:
            ACTIVITIES_FAILED.inc(activity=name)
            raise
        ACTIVITIES_COMPLETED.inc(activity=name)
        return result


class ActivityMetricsInterceptor(temporal_client.Interceptor, Interceptor):
    """Counts activity attempts by activity name. A client interceptor that is also a worker
    interceptor is applied to every worker built from that client."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountingInbound(next)
