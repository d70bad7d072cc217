"""The batch flow's activities: extract, transform and load one staged batch each.

`ETLActivities` is built once per worker and handed its dependencies (settings and
`Database`). Its methods are sync: sources and psycopg2 block, so the worker runs them
on a thread pool. Errors retrying cannot fix leave here as non-retryable
`ApplicationError`s whose `type` is the error class name (see `etl.core.errors`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from temporalio import activity

from etl import metrics
from etl.activities.classify import non_retryable_errors
from etl.activities.heartbeat import Heartbeater
from etl.activities.raw_pages import decode_page, encode_line, encode_pickled, lines_page
from etl.core.extract import ExtractStrategy
from etl.core.models import JSON_FIELDS, json_default, key_problem, storable, transform
from etl.core.query import Query, QueryFactory
from etl.core.settings import Settings
from etl.store.checkpoints import Checkpoints, Commit
from etl.store.db import Database, RejectRow, reject_key
from etl.store.staging import Staging
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import (
    BatchRef,
    ExtractBatchInput,
    ExtractBatchResult,
    ExtractProgress,
    LoadResult,
    SplitInput,
    SplitResult,
    TransformResult,
)

log = logging.getLogger(__name__)


def encode_record(record: Any) -> str:
    """One raw record as a JSON line (a page that cannot be pickled is staged as these); text
    orjson refuses (lone surrogates) is written ASCII-escaped by the exact encoder, so it survives
    staging and the transform can reject it with a precise reason. A properties object with a key that is
    not text is refused here: JSON would make `1` and `"1"` one key before the transform sees it."""
    if type(record) is not dict:  # a subclass is read as the transform reads it (its own `get`)
        _check_keys(record)
    return encode_line(record, _exact_json, json_default)


def _check_keys(record: Any) -> None:
    if isinstance(record, dict):
        for name in JSON_FIELDS:
            problem = key_problem(record.get(name), name)
            if problem:
                raise ValueError(problem)


def _exact_json(record: Any) -> str:
    # Only records orjson refused (or that hold NaN) come here, and orjson refuses every key that
    # is not text: so the key check runs for these alone, before the standard library would turn
    # such a key into text.
    _check_keys(record)
    return json.dumps(record, ensure_ascii=True, default=json_default, allow_nan=False)


def encode_page(records: list[Any]) -> tuple[bytes, int, list[tuple[Any, str]]]:
    """A page as ETLFlow stages it (see `etl.activities.raw_pages`), how many records it holds, and
    the records that cannot be stored, each with its reason (they go to the rejects)."""
    whole = encode_pickled(records)
    if whole is not None:
        return whole, len(records), []
    lines: list[str] = []
    unstorable: list[tuple[Any, str]] = []
    for record in records:
        try:
            lines.append(encode_record(record))
        except Exception as exc:  # noqa: BLE001 - one record never fails the batch
            why = str(exc)[:300] or type(exc).__name__
            unstorable.append((storable(record), f"record cannot be stored as JSON: {why}"))
    return lines_page(lines), len(lines), unstorable


def resolve(query_type: str, strategy_name: str, args: dict[str, Any]) -> tuple[Query, ExtractStrategy]:
    """The validated query and the strategy, checked to belong together."""
    strategy = ExtractStrategy.create(strategy_name)
    if strategy.query_type != query_type:
        from etl.core.errors import QueryError

        raise QueryError(query_type, None, f"strategy {strategy_name!r} takes a {strategy.query_type!r} query, "
                                           f"not {query_type!r}")
    return QueryFactory.create(query_type, args), strategy


def split(inp: SplitInput) -> SplitResult:
    """The query's disjoint parts (up to `inp.parts`) as the source splits it; the query itself when
    it cannot. Every part is validated before anything runs."""
    query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
    if strategy.split is None or inp.parts <= 1:
        return SplitResult([query.to_dict()])
    parts = strategy.split(query, inp.parts)
    for args in parts:
        QueryFactory.create(inp.query_type, args)
    return SplitResult(parts)


def record_rejects(db: Database, strategy: str, items: list[tuple[Any, str]], cur: Any = None) -> int:
    """Write `(raw, reason)` rejects with keys derived from the records, so retries and re-runs
    keep one row each (in the transaction of `cur` when given). Returns how many were new."""
    workflow_id = activity.info().workflow_id if activity.in_activity() else None
    source = strategy.split("-", 1)[0]
    rows = (RejectRow(key=reject_key(strategy, raw), record=raw, reason=reason, source=source,
                      strategy=strategy, workflow_id=workflow_id) for raw, reason in items)
    return db.insert_rejects(rows) if cur is None else db.write_rejects(cur, rows)


class ETLActivities(contracts.BatchActivities):
    """Extract, transform and load, one staged batch at a time."""

    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self.staging = Staging(db)
        self.checkpoints = Checkpoints(db)

    def _rejects(self, strategy: str, items: list[tuple[Any, str]], cur: Any = None) -> int:
        return record_rejects(self.db, strategy, items, cur)

    @activity.defn
    @non_retryable_errors
    def extract_batch(self, inp: ExtractBatchInput) -> ExtractBatchResult:
        """Read pages from `inp.cursor` until `batch_size` records, staging each page as it comes.

        Each page commits with the extract's resume point, so a retry resumes after the last
        staged page (the pages before it are kept) whatever the heartbeats managed to send: a
        failure on page 40 of a slow source costs page 40 only. After the source's last page the
        resume point is marked done, so a retry then reads nothing again."""
        info = activity.info()
        query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
        saved = self.checkpoints.load(inp.batch_key)
        details = info.heartbeat_details
        if saved is not None and self.staging.raw_page_count(inp.batch_key) < saved[0].get("pages", 0):
            # The pages went with the UNLOGGED staging table (a PostgreSQL crash): read the batch again.
            activity.logger.warning("staged pages of %s were lost; extracting it again", inp.batch_key)
            self.checkpoints.clear(inp.batch_key)
            saved, details = None, ()
        if saved is not None:
            progress = ExtractProgress(**saved[0])
            if saved[1] or progress.extracted >= inp.batch_size:  # finished before it could report
                activity.logger.info("extract of %s was finished by an earlier attempt", inp.batch_key)
                return ExtractBatchResult(inp.batch_key, progress.extracted, progress.staged, progress.rejected,
                                          progress.cursor, saved[1])
        else:  # details only from an attempt that started before resume points were committed
            progress = ExtractProgress(**details[0]) if details else ExtractProgress(cursor=inp.cursor)
        if saved is not None or details:
            activity.logger.info("extract of %s resumes after page %d at cursor %r", inp.batch_key,
                                 progress.pages, progress.cursor)
        self.staging.discard_raw(inp.batch_key, from_page=progress.pages)
        done = True
        pages = strategy.pages(query, progress.cursor, self.settings)
        with Heartbeater(self.settings.activity_stall_s) as hb:
            hb.beat(progress)
            try:
                for page in pages:
                    records = list(page.records)
                    text, staged, unstorable = encode_page(records)
                    if unstorable:  # first: once the page commits, a retry will not read these again
                        self._rejects(inp.strategy, unstorable)
                    page_no = progress.pages
                    progress = ExtractProgress(page.cursor, progress.pages + 1, progress.extracted + len(records),
                                               progress.staged + staged, progress.rejected + len(unstorable))
                    # A page whose cursor is None was the last one: the resume point says so.
                    self.staging.stage_raw_page(
                        inp.batch_key, page_no, text, dataclasses.asdict(progress), done=page.cursor is None,
                        commit=Commit(inp.batch_key, "page", len(records), 0, page_no, info.workflow_id,
                                      info.attempt))
                    hb.beat(progress)
                    metrics.batch_extracted(len(records), len(unstorable))
                    if progress.extracted >= inp.batch_size:
                        # A page whose cursor is None was the last one (None resumes from the start).
                        done = progress.cursor is None
                        break
            finally:
                close = getattr(pages, "close", None)
                if close:
                    close()
        if done and progress.pages and progress.cursor is not None:
            self.checkpoints.mark_done(inp.batch_key)  # a None cursor was marked with its page
        activity.logger.info("extracted %d records into %s (done=%s)", progress.extracted, inp.batch_key, done)
        return ExtractBatchResult(inp.batch_key, progress.extracted, progress.staged, progress.rejected,
                                  progress.cursor, done)

    @activity.defn
    @non_retryable_errors
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        """Turn a staged raw batch into staged events and recorded rejects, a page at a time."""

        def convert(cur: Any, page: bytes) -> tuple[int, list[str]]:
            records = decode_page(page)
            events, rejects = transform(records)
            if rejects:  # in the staging transaction: committed with the events, or not at all
                self._rejects(ref.strategy, rejects, cur)
            hb.progressed()
            return len(records), [event.copy_row() for event in events]

        with Heartbeater(self.settings.activity_stall_s) as hb:
            # Under the batch's lock: an overlapping attempt waits, and one after the load stages nothing.
            counts = self.staging.transform_raw(ref.batch_key, ref.expected, convert)
        if counts is None:  # an attempt that outlived the load: its result goes nowhere
            activity.logger.info("%s was loaded already; nothing to transform", ref.batch_key)
            return TransformResult(ref.batch_key, 0, 0)
        # Every record is an event or a reject. Counted from the attempt that committed: the
        # transaction may have run again after a lost connection, converting its pages again.
        rejected = counts[0] - counts[1]
        metrics.EVENTS_REJECTED.inc(rejected)
        activity.logger.info("transformed %s: %d events, %d rejects", ref.batch_key, counts[1], rejected)
        return TransformResult(ref.batch_key, counts[1], rejected)

    @activity.defn
    @non_retryable_errors
    def load_batch(self, ref: BatchRef) -> LoadResult:
        """Insert a staged batch into the events table, idempotently."""
        info = activity.info()
        with Heartbeater(self.settings.activity_stall_s):
            counts = self.staging.load_staged(ref.batch_key, ref.expected, loaded_by=info.workflow_id,
                                              attempt=info.attempt)
        metrics.batch_loaded(counts.inserted, counts.staged - counts.inserted)
        activity.logger.info("loaded %s: %d new, %d already present", ref.batch_key, counts.inserted,
                             counts.staged - counts.inserted)
        return LoadResult(ref.batch_key, counts.inserted, counts.staged - counts.inserted)

    @activity.defn
    @non_retryable_errors
    def split_extract(self, inp: SplitInput) -> SplitResult:
        """Disjoint parts of the query for parallel extraction (the query itself when it cannot split)."""
        return split(inp)

    @activity.defn
    @non_retryable_errors
    def finish_flow(self, flow_key: str) -> None:
        """Drop the flow's leftover staging, resume points and batch ledger (completed or failed)."""
        removed = self.staging.forget(flow_key)
        if removed:
            metrics.STAGING_SWEPT.inc(removed)
