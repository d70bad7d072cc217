"""StreamingETLFlow's activities: split a query into chunks, and run one chunk's pages through
extract, transform and load in-process, with bounded memory.

A chunk call runs the resumable page loop (`etl.activities.pages`): each page's events, its
rejects and the chunk's state commit in one transaction, so a retry (after a crash, a timeout,
a lost database) starts after the last committed page, and only the page in flight is
processed again, which is harmless: loads skip events already present and rejects are keyed
by content.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any

from temporalio import activity

from etl import metrics
from etl.activities.archive import source_archive, split_through_archive
from etl.activities.backpressure import MemoryGuard
from etl.activities.budgets import SourceBudgets
from etl.activities.classify import classified_errors
from etl.activities.pages import PageLoop
from etl.activities.query import check_load_mode, resolve
from etl.core.extract import Page
from etl.core.models import transform
from etl.core.settings import Settings
from etl.store.checkpoints import Checkpoints
from etl.store.db import Database
from etl.store.events import Events, Written
from etl.store.rejects import Rejects
from etl.store.staging import Staging
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import (
    ChunkInput,
    ChunkState,
    Counts,
    SplitInput,
    SplitResult,
)


def decode_chunk(saved: dict[str, Any]) -> ChunkState:
    return ChunkState(**{**saved, "counts": Counts(**saved["counts"])})


class StreamingActivities(contracts.StreamingActivities):
    def __init__(self, settings: Settings, db: Database, guard: MemoryGuard | None = None):
        self.settings = settings
        self.db = db
        self.guard = guard or MemoryGuard(settings.memory_limit_mib, settings.memory_hold_max_s)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.checkpoints = Checkpoints(db)
        self.events = Events(db)
        self.rejects = Rejects(db)
        self.budgets = SourceBudgets(settings, db)

    @activity.defn
    @classified_errors
    def split_query(self, inp: SplitInput) -> SplitResult:
        """Disjoint sub-queries for parallel chunks (the whole query when the source cannot split)."""
        return split_through_archive(self.settings, self.db, inp)

    @activity.defn
    @classified_errors
    def process_chunk(self, inp: ChunkInput) -> ChunkState:
        """Run a chunk from its last committed page for up to `max_pages` pages."""
        info = activity.info()
        unit = PageLoop(self.checkpoints, f"{inp.flow_key}/c{inp.chunk.index}", self.settings.activity_stall_s)
        chunk, done, resumed = unit.resume(inp.chunk, decode_chunk)
        chunk = dataclasses.replace(chunk, args=inp.chunk.args, resumed_from=chunk.cursor,
                                    resumed=resumed or info.attempt > 1)
        if done:  # the last page committed before an earlier attempt could report it
            return dataclasses.replace(chunk, done=True)
        query, strategy = resolve(inp.query_type, inp.strategy, chunk.args)
        mode = check_load_mode(inp.load_mode)
        calls_pages = chunk.pages

        def commit(page: Page, before: ChunkState) -> ChunkState:
            events, rejects = transform(page.records)
            after = dataclasses.replace(before, cursor=page.cursor, pages=before.pages + 1,
                                        counts=dataclasses.replace(before.counts))

            def then(cur, written: Written) -> None:  # inside the load's transaction (maybe run again)
                self.rejects.record(inp.strategy, rejects, info.workflow_id, cur)
                after.counts = dataclasses.replace(before.counts)
                after.counts.add(Counts(extracted=len(page.records), rejected=len(rejects), loaded=written.inserted,
                                        updated=written.updated,
                                        unchanged=len(events) - written.inserted - written.updated))
                unit.save(cur, after, page, len(page.records), written.inserted, written.updated)

            written = self.events.insert(events, loaded_by=info.workflow_id, mode=mode, then=then)
            metrics.page_committed(len(page.records), written.inserted, written.updated,
                                   len(events) - written.inserted - written.updated, len(rejects))
            held = self.guard.wait_below(unit.heartbeat.progressed, stop=activity.is_worker_shutdown)
            if held:
                after.held_s += held
                after.held_note = f"{self.identity} paused {held:.1f}s: RSS above MEMORY_LIMIT_MIB={self.guard.limit_mib}"
            return after

        def enough(c: ChunkState) -> bool:
            # A draining worker hands the chunk back after the page it committed: the next call
            # resumes from there on another worker, instead of running out the drain's grace.
            return activity.is_worker_shutdown() or bool(inp.max_pages and c.pages - calls_pages >= inp.max_pages)

        with source_archive(self.settings, self.db, inp.archive, inp.query_type, inp.strategy, chunk.args,
                            chunk.cursor) as reading:
            pages = self.budgets.around(strategy.pages(query, chunk.cursor, self.settings), unit)
            chunk, done = unit.run(pages, chunk, commit, reading.enough(enough))
        chunk.from_archive += reading.answered
        chunk.done = done
        metrics.CHUNK_CALLS.inc()
        chunk.peak_rss_mib = max(chunk.peak_rss_mib, self.guard.peak_mib)
        return chunk

    @activity.defn
    @classified_errors
    def finish_stream(self, flow_key: str) -> None:
        """Drop the flow's resume points (and any staging it left)."""
        Staging(self.db).forget(flow_key)
