"""The batch flow's activities: extract, transform and load one staged batch each.

`ETLActivities` is built once per worker and handed its dependencies (settings and
`Database`). Its methods are sync: sources and psycopg2 block, so the worker runs them
on a thread pool. Errors retrying cannot fix leave here as non-retryable
`ApplicationError`s whose `type` is the error class name (see `etl.core.errors`).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import Any

from temporalio import activity

from etl import metrics
from etl.activities.classify import non_retryable_errors
from etl.activities.heartbeat import Heartbeater
from etl.core.extract import ExtractStrategy
from etl.core.models import transform
from etl.core.query import Query, QueryFactory
from etl.core.settings import Settings
from etl.store.db import Database, RejectRow, reject_key
from etl.store.staging import StagedBatchMissing, Staging
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import (
    BatchRef,
    ExtractBatchInput,
    ExtractBatchResult,
    ExtractProgress,
    LoadResult,
    TransformResult,
)

log = logging.getLogger(__name__)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


def encode_record(record: Any) -> str:
    """One raw record as a JSON line; ASCII-only so any text (lone surrogates, NULs) survives staging
    and the transform can reject it with a precise reason."""
    return json.dumps(record, ensure_ascii=True, default=_json_default, allow_nan=False)


def resolve(query_type: str, strategy_name: str, args: dict[str, Any]) -> tuple[Query, ExtractStrategy]:
    """The validated query and the strategy, checked to belong together."""
    strategy = ExtractStrategy.create(strategy_name)
    if strategy.query_type != query_type:
        from etl.core.errors import QueryError

        raise QueryError(query_type, None, f"strategy {strategy_name!r} takes a {strategy.query_type!r} query, "
                                           f"not {query_type!r}")
    return QueryFactory.create(query_type, args), strategy


def record_rejects(db: Database, strategy: str, items: list[tuple[Any, str]]) -> int:
    """Write `(raw, reason)` rejects with keys derived from the records, so retries and re-runs
    keep one row each. Returns how many were new."""
    workflow_id = activity.info().workflow_id if activity.in_activity() else None
    source = strategy.split("-", 1)[0]
    return db.insert_rejects(
        RejectRow(key=reject_key(strategy, raw), record=raw, reason=reason, source=source,
                  strategy=strategy, workflow_id=workflow_id)
        for raw, reason in items
    )


class ETLActivities(contracts.BatchActivities):
    """Extract, transform and load, one staged batch at a time."""

    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self.staging = Staging(db)

    def _rejects(self, strategy: str, items: list[tuple[Any, str]]) -> int:
        return record_rejects(self.db, strategy, items)

    @activity.defn
    @non_retryable_errors
    def extract_batch(self, inp: ExtractBatchInput) -> ExtractBatchResult:
        """Read pages from `inp.cursor` until `batch_size` records, staging each page as it comes.

        A retry resumes from the last heartbeat (the pages staged before it are kept), so a
        failure on page 40 of a slow source does not cost pages 1 to 39 again."""
        query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
        details = activity.info().heartbeat_details
        progress = ExtractProgress(**details[0]) if details else ExtractProgress(cursor=inp.cursor)
        if details:
            activity.logger.info("extract of %s resumes after page %d at cursor %r", inp.batch_key,
                                 progress.pages, progress.cursor)
        self.staging.discard_raw(inp.batch_key, from_page=progress.pages)
        done = True
        pages = strategy.pages(query, progress.cursor, self.settings)
        with Heartbeater() as hb:
            hb.beat(progress)
            try:
                for page in pages:
                    lines: list[str] = []
                    unstorable: list[tuple[Any, str]] = []
                    for record in page.records:
                        try:
                            lines.append(encode_record(record))
                        except (TypeError, ValueError) as exc:
                            unstorable.append((record, f"record cannot be stored as JSON: {exc}"))
                    self.staging.stage_raw_page(inp.batch_key, progress.pages, lines)
                    if unstorable:
                        self._rejects(inp.strategy, unstorable)
                    progress = ExtractProgress(page.cursor, progress.pages + 1, progress.extracted + len(page.records),
                                               progress.staged + len(lines), progress.rejected + len(unstorable))
                    hb.beat(progress)
                    metrics.batch_extracted(len(page.records), len(unstorable))
                    if progress.extracted >= inp.batch_size:
                        # A page whose cursor is None was the last one (None resumes from the start).
                        done = progress.cursor is None
                        break
            finally:
                close = getattr(pages, "close", None)
                if close:
                    close()
        activity.logger.info("extracted %d records into %s (done=%s)", progress.extracted, inp.batch_key, done)
        return ExtractBatchResult(inp.batch_key, progress.extracted, progress.staged, progress.rejected,
                                  progress.cursor, done)

    @activity.defn
    @non_retryable_errors
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        """Turn a staged raw batch into staged events and recorded rejects."""
        with Heartbeater():
            lines = self.staging.read_raw(ref.batch_key)
            if lines is None:
                raise StagedBatchMissing(f"raw batch {ref.batch_key} is not staged; was it loaded already?")
            records = [json.loads(line) for line in lines]
            events, rejects = transform(records)
            self.staging.stage_events(ref.batch_key, events)
            if rejects:
                self._rejects(ref.strategy, rejects)
        metrics.EVENTS_REJECTED.inc(len(rejects))
        activity.logger.info("transformed %s: %d events, %d rejects", ref.batch_key, len(events), len(rejects))
        return TransformResult(ref.batch_key, len(events), len(rejects))

    @activity.defn
    @non_retryable_errors
    def load_batch(self, ref: BatchRef) -> LoadResult:
        """Insert a staged batch into the events table, idempotently."""
        with Heartbeater():
            counts = self.staging.load_staged(ref.batch_key, ref.expected)
        metrics.batch_loaded(counts.inserted, counts.staged - counts.inserted)
        activity.logger.info("loaded %s: %d new, %d already present", ref.batch_key, counts.inserted,
                             counts.staged - counts.inserted)
        return LoadResult(ref.batch_key, counts.inserted, counts.staged - counts.inserted)

    @activity.defn
    @non_retryable_errors
    def finish_flow(self, flow_key: str) -> None:
        """Drop the flow's leftover staging and its load ledger."""
        self.staging.forget(flow_key)
