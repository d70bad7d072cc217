"""ETLFlow's activities: extract, transform and load one staged batch each.

`ETLActivities` is built once per worker and handed its settings and `Database`. Its methods
are sync (sources and psycopg2 block), so the worker runs them on a thread pool. Errors no
retry can fix leave as non-retryable `ApplicationError`s (`etl.activities.classify`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio import activity

from etl import metrics
from etl.activities.archive import source_archive, split_through_archive
from etl.activities.budgets import SourceBudgets
from etl.activities.classify import classified_errors
from etl.activities.pages import Heartbeater, PageLoop
from etl.activities.query import check_load_mode, resolve
from etl.core.extract import Page
from etl.core.models import transform
from etl.core.settings import Settings
from etl.store.checkpoints import Checkpoints
from etl.store.db import Database
from etl.store.rejects import Rejects
from etl.store.staging import Staging
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import (
    BatchRef,
    Counts,
    ExtractBatchInput,
    ExtractBatchResult,
    LoadResult,
    SplitInput,
    SplitResult,
    TransformResult,
)


@dataclasses.dataclass
class ExtractState:
    """Where a batch's extract stands: its resume point, committed with each staged page."""

    cursor: str | None = None
    pages: int = 0
    counts: Counts = dataclasses.field(default_factory=Counts)
    staged: int = 0

    @staticmethod
    def decode(saved: dict[str, Any]) -> "ExtractState":
        return ExtractState(saved["cursor"], saved["pages"], Counts(**saved["counts"]), saved["staged"])


class ETLActivities(contracts.BatchActivities):
    """Extract, transform and load, one staged batch at a time."""

    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self.staging = Staging(db)
        self.checkpoints = Checkpoints(db)
        self.rejects = Rejects(db)
        self.budgets = SourceBudgets(settings, db)

    @activity.defn
    @classified_errors
    def extract_batch(self, inp: ExtractBatchInput) -> ExtractBatchResult:
        """Read pages from `inp.cursor` until `batch_size` records, staging each page with the
        extract's resume point: a retry resumes after the last staged page."""
        query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
        unit = PageLoop(self.checkpoints, inp.batch_key, self.settings.activity_stall_s)
        state, done, _ = unit.resume(ExtractState(cursor=inp.cursor), ExtractState.decode)
        if state.pages and self.staging.raw_page_count(inp.batch_key) < state.pages:
            # The pages went with the UNLOGGED staging table (a PostgreSQL crash): read the batch again.
            activity.logger.warning("staged pages of %s were lost; extracting it again", inp.batch_key)
            self.checkpoints.clear(inp.batch_key)
            state, done = ExtractState(cursor=inp.cursor), False
        full = state.counts.extracted >= inp.batch_size
        from_archive = 0
        if not (done or full):
            workflow_id = activity.info().workflow_id

            def commit(page: Page, before: ExtractState) -> ExtractState:
                records = list(page.records)

                def write(cur) -> ExtractState:
                    staged, unstorable = self.staging.put_page(cur, inp.batch_key, before.pages, records)
                    self.rejects.record(inp.strategy, unstorable, workflow_id, cur)
                    after = ExtractState(page.cursor, before.pages + 1, dataclasses.replace(before.counts),
                                         before.staged + staged)
                    after.counts.add(Counts(extracted=len(records), rejected=len(unstorable)))
                    unit.save(cur, after, page, len(records))
                    return after

                after = self.db.run(write, what=f"staging page {before.pages} of batch {inp.batch_key}")
                metrics.batch_extracted(len(records), after.counts.rejected - before.counts.rejected)
                return after

            with source_archive(self.settings, self.db, inp.archive, inp.query_type, inp.strategy, inp.args,
                                state.cursor) as reading:
                pages = self.budgets.around(strategy.pages(query, state.cursor, self.settings), unit)
                state, done = unit.run(pages, state, commit,
                                       reading.enough(lambda s: s.counts.extracted >= inp.batch_size))
            from_archive = reading.answered
        activity.logger.info("extracted %d records into %s (done=%s)", state.counts.extracted, inp.batch_key, done)
        return ExtractBatchResult(inp.batch_key, state.counts, state.staged, state.cursor, done, from_archive)

    @activity.defn
    @classified_errors
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        """Turn a staged raw batch into staged events and recorded rejects, a page at a time."""
        workflow_id = activity.info().workflow_id
        hashed = check_load_mode(ref.load_mode) != "insert"

        def convert(cur: Any, records: list[Any]) -> list[str]:
            events, rejects = transform(records)
            # In the staging transaction: committed with the events, or not at all.
            self.rejects.record(ref.strategy, rejects, workflow_id, cur)
            hb.progressed()
            return [event.copy_row(hashed) for event in events]

        with Heartbeater(self.settings.activity_stall_s) as hb:
            # Under the batch's lock: an overlapping attempt waits, and one after the load stages nothing.
            counts = self.staging.transform_raw(ref.batch_key, ref.expected, convert)
        if counts is None:  # an attempt that outlived the load: its result goes nowhere
            activity.logger.info("%s was loaded already; nothing to transform", ref.batch_key)
            return TransformResult(ref.batch_key, 0, 0)
        # Every record is an event or a reject. Counted from the attempt that committed: the
        # transaction may have run again after a lost connection, converting its pages again.
        records, rows = counts
        metrics.EVENTS_REJECTED.inc(records - rows)
        activity.logger.info("transformed %s: %d events, %d rejects", ref.batch_key, rows, records - rows)
        return TransformResult(ref.batch_key, rows, records - rows)

    @activity.defn
    @classified_errors
    def load_batch(self, ref: BatchRef) -> LoadResult:
        """Insert a staged batch into the events table, idempotently."""
        info = activity.info()
        mode = check_load_mode(ref.load_mode)
        with Heartbeater(self.settings.activity_stall_s):
            counts = self.staging.load_staged(ref.batch_key, ref.expected, loaded_by=info.workflow_id,
                                              attempt=info.attempt, mode=mode)
        unchanged = counts.staged - counts.inserted - counts.updated
        metrics.batch_loaded(counts.inserted, counts.updated, unchanged)
        activity.logger.info("loaded %s (%s): %d new, %d updated, %d unchanged", ref.batch_key, mode,
                             counts.inserted, counts.updated, unchanged)
        return LoadResult(ref.batch_key, counts.inserted, counts.updated, unchanged)

    @activity.defn
    @classified_errors
    def split_extract(self, inp: SplitInput) -> SplitResult:
        """Disjoint parts of the query for parallel extraction (the query itself when it cannot split)."""
        return split_through_archive(self.settings, self.db, inp)

    @activity.defn
    @classified_errors
    def finish_flow(self, flow_key: str) -> None:
        """Drop the flow's leftover staging, resume points and batch ledger (completed or failed)."""
        removed = self.staging.forget(flow_key)
        if removed:
            metrics.STAGING_SWEPT.inc(removed)
