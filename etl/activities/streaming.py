"""The streaming flow's activities: split a query into chunks, and run one chunk's pages through
extract, transform and load in-process, with bounded memory.

A chunk heartbeats its `ChunkState` (cursor and counts) after every committed page. A retry
(after a crash, a timeout, a lost database) starts from the last heartbeat, not from page
zero; the page that was in flight is re-processed, which is harmless because loads skip
events already present and rejects are keyed by content.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

from temporalio import activity

from etl import metrics
from etl.activities.backpressure import MemoryGuard
from etl.activities.batch import record_rejects, resolve
from etl.activities.classify import non_retryable_errors
from etl.activities.heartbeat import Heartbeater
from etl.core.models import transform
from etl.core.query import QueryFactory
from etl.core.settings import Settings
from etl.store.db import Database
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import ChunkInput, ChunkState, SplitInput, SplitResult

log = logging.getLogger(__name__)


class StreamingActivities(contracts.StreamingActivities):
    def __init__(self, settings: Settings, db: Database, guard: MemoryGuard | None = None):
        self.settings = settings
        self.db = db
        self.guard = guard or MemoryGuard(settings.memory_limit_mib, settings.memory_hold_max_s)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"

    @activity.defn
    @non_retryable_errors
    def split_query(self, inp: SplitInput) -> SplitResult:
        """Disjoint sub-queries for parallel chunks (the whole query when the source cannot split)."""
        query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
        if strategy.split is None or inp.parts <= 1:
            return SplitResult([query.to_dict()])
        parts = strategy.split(query, inp.parts)
        for args in parts:  # every part must be a valid query before anything runs
            QueryFactory.create(inp.query_type, args)
        return SplitResult(parts)

    @activity.defn
    @non_retryable_errors
    def process_chunk(self, inp: ChunkInput) -> ChunkState:
        """Run a chunk from its cursor (or its last heartbeat) for up to `max_pages` pages."""
        chunk = inp.chunk
        details = activity.info().heartbeat_details
        if details:
            # Heartbeat details come back without type hints: a dict for our dataclass.
            raw = details[0]
            chunk = ChunkState(**raw) if isinstance(raw, dict) else raw
            activity.logger.info("chunk %d resumes from its heartbeat: cursor %r after %d pages",
                                 chunk.index, chunk.cursor, chunk.pages)
        chunk = dataclasses.replace(chunk, resumed_from=chunk.cursor, resumed=bool(details))
        query, strategy = resolve(inp.query_type, inp.strategy, chunk.args)
        pages = strategy.pages(query, chunk.cursor, self.settings)
        done_this_call = 0
        finished = True
        with Heartbeater() as hb:
            hb.beat(chunk)
            try:
                for page in pages:
                    events, rejects = transform(page.records)
                    inserted = self.db.insert_events_batch(events)
                    if rejects:
                        record_rejects(self.db, inp.strategy, rejects)
                    chunk.cursor = page.cursor
                    chunk.pages += 1
                    chunk.extracted += len(page.records)
                    chunk.rejected += len(rejects)
                    chunk.loaded += inserted
                    chunk.duplicates_skipped += len(events) - inserted
                    hb.beat(dataclasses.replace(chunk))
                    metrics.page_committed(len(page.records), inserted, len(events) - inserted, len(rejects))
                    held = self.guard.wait_below()
                    if held:
                        chunk.held_s += held
                        chunk.held_note = (f"{self.identity} paused {held:.1f}s: RSS above "
                                           f"MEMORY_LIMIT_MIB={self.guard.limit_mib}")
                    done_this_call += 1
                    # A page whose cursor is None was the last one (None resumes from the start).
                    if inp.max_pages and done_this_call >= inp.max_pages and chunk.cursor is not None:
                        finished = False
                        break
            finally:
                close = getattr(pages, "close", None)
                if close:
                    close()
        chunk.done = finished
        metrics.CHUNK_CALLS.inc()
        chunk.peak_rss_mib = max(chunk.peak_rss_mib, self.guard.peak_mib)
        return chunk
