"""The streaming flow's activities: split a query into chunks, and run one chunk's pages through
extract, transform and load in-process, with bounded memory.

A chunk commits its `ChunkState` (cursor and counts) with every page, in the page's own
transaction (`etl.store.checkpoints`), and heartbeats it too. A retry (after a crash, a
timeout, a lost database) starts from the last committed page, whatever the heartbeats
managed to send; only the page that was in flight is processed again, which is harmless
because loads skip events already present and rejects are keyed by content. After the last
page the chunk is marked done in the same transaction, so a retry then has nothing to redo.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

from temporalio import activity

from etl import metrics
from etl.activities.backpressure import MemoryGuard
from etl.activities.batch import record_rejects, resolve, split
from etl.activities.classify import non_retryable_errors
from etl.activities.heartbeat import Heartbeater
from etl.core.models import transform
from etl.core.settings import Settings
from etl.store.checkpoints import Checkpoints, Commit
from etl.store.db import Database
from etl.store.staging import Staging
from etl.workflows import activity_contracts as contracts
from etl.workflows.flow_io import ChunkInput, ChunkState, SplitInput, SplitResult

log = logging.getLogger(__name__)


class StreamingActivities(contracts.StreamingActivities):
    def __init__(self, settings: Settings, db: Database, guard: MemoryGuard | None = None):
        self.settings = settings
        self.db = db
        self.guard = guard or MemoryGuard(settings.memory_limit_mib, settings.memory_hold_max_s)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.checkpoints = Checkpoints(db)

    @activity.defn
    @non_retryable_errors
    def split_query(self, inp: SplitInput) -> SplitResult:
        """Disjoint sub-queries for parallel chunks (the whole query when the source cannot split)."""
        return split(inp)

    @activity.defn
    @non_retryable_errors
    def process_chunk(self, inp: ChunkInput) -> ChunkState:
        """Run a chunk from its last committed page for up to `max_pages` pages."""
        info = activity.info()
        key = f"{inp.flow_key}/c{inp.chunk.index}"
        chunk, resumed = inp.chunk, False
        saved = self.checkpoints.load(key)
        if saved is not None and saved[0].get("pages", 0) >= chunk.pages:
            chunk, resumed = ChunkState(**{**saved[0], "args": inp.chunk.args}), chunk.pages != saved[0]["pages"]
            if saved[1]:  # the last page committed before the previous attempt could report it
                activity.logger.info("chunk %d was read to the end by an earlier attempt", chunk.index)
                return dataclasses.replace(chunk, done=True)
        elif info.heartbeat_details:  # a unit that started before resume points were committed
            raw = info.heartbeat_details[0]
            chunk, resumed = (ChunkState(**raw) if isinstance(raw, dict) else raw), True
        if resumed:
            activity.logger.info("chunk %d resumes from its last committed page: cursor %r after %d pages",
                                 chunk.index, chunk.cursor, chunk.pages)
        chunk = dataclasses.replace(chunk, resumed_from=chunk.cursor, resumed=resumed or info.attempt > 1)
        query, strategy = resolve(inp.query_type, inp.strategy, chunk.args)
        pages = strategy.pages(query, chunk.cursor, self.settings)
        done_this_call = 0
        finished = True
        with Heartbeater(self.settings.activity_stall_s) as hb:
            hb.beat(chunk)
            try:
                for page in pages:
                    events, rejects = transform(page.records)
                    if rejects:  # first: once the page commits, a retry will not see these records again
                        record_rejects(self.db, inp.strategy, rejects)
                    page_no = chunk.pages
                    after = dataclasses.replace(chunk, cursor=page.cursor, pages=chunk.pages + 1,
                                                extracted=chunk.extracted + len(page.records),
                                                rejected=chunk.rejected + len(rejects))

                    def commit(cur, inserted: int) -> None:  # inside the load's transaction (maybe retried)
                        after.loaded = chunk.loaded + inserted
                        after.duplicates_skipped = chunk.duplicates_skipped + len(events) - inserted
                        # A page whose cursor is None was the last one: mark the chunk done with it.
                        self.checkpoints.save(cur, key, dataclasses.asdict(after), done=page.cursor is None)
                        self.checkpoints.log(cur, Commit(key, "page", len(page.records), inserted, page_no,
                                                         info.workflow_id, info.attempt))

                    inserted = self.db.insert_events_batch(events, loaded_by=info.workflow_id, then=commit)
                    chunk = after
                    hb.beat(dataclasses.replace(chunk))
                    metrics.page_committed(len(page.records), inserted, len(events) - inserted, len(rejects))
                    held = self.guard.wait_below(hb.progressed)
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
        if finished and chunk.pages and chunk.cursor is not None:
            self.checkpoints.mark_done(key)  # a None cursor was marked with its page
        metrics.CHUNK_CALLS.inc()
        chunk.peak_rss_mib = max(chunk.peak_rss_mib, self.guard.peak_mib)
        return chunk

    @activity.defn
    @non_retryable_errors
    def finish_stream(self, flow_key: str) -> None:
        """Drop the flow's resume points (and any staging it left)."""
        Staging(self.db).forget(flow_key)
