"""What a crash costs, and what it leaves: activities run against the real PostgreSQL, with the
faults made exact instead of timed.

A crash "after page k" is a source that raises once page k has been committed, with every
heartbeat of that attempt thrown away (the SDK throttles them, and a SIGKILL loses the last):
the retry must resume after page k from what committed with the page, redoing at most the
page in flight, and a crash after the last page must not start the read again. Overlapping
attempts of one transform must stage a batch once. The database layer must replace only a
broken connection, retry for `DB_RETRY_S`, and bound statements; heartbeats must stop when
work stops moving; the slot supplier must not block the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from temporalio.testing import ActivityEnvironment

from etl.activities.backpressure import MemoryAwareSlotSupplier, MemoryGuard
from etl.activities.batch import ETLActivities
from etl.activities.pages import Heartbeater
from etl.activities.streaming import StreamingActivities
from etl.core import extract
from etl.core.extract import Page
from etl.core.models import transform
from etl.core.settings import settings_from_env
from etl.store.db import Database
from etl.store.rejects import RejectRow, Rejects
from etl.store.staging import Staging
from etl.workflows.flow_io import (
    BatchRef,
    ChunkInput,
    ChunkState,
    ETLFlowInput,
    ExtractBatchInput,
)
from sources.synthetic.flows.events import expected_event_ids, record
from sources.synthetic.query import SyntheticQuery
from tests.reliability.checks import ledger_figures
from tests.staged import stage_events, staged_pages

PAGE = 500
PAGES = 10
ARGS = {"count": PAGE * PAGES, "seed": 4242, "page_size": PAGE}


def staged_records(db: Database, batch_key: str) -> int:
    """How many raw records of the batch are staged."""
    return sum(len(page) for page in staged_pages(Staging(db), batch_key))


class Crash(Exception):
    """The worker died here (the attempt's result and unsent heartbeats are lost)."""


@pytest.fixture
def faulty_source():
    """`crashy-events` (synthetic records) raises once after `crash_after` pages; `lastnone-events`
    ends with a page whose cursor is None, as sources with no next page do."""
    plan = {"crash_after": None, "pages_read": 0}

    def pages(query: SyntheticQuery, cursor: str | None, last_none: bool) -> Iterator[Page]:
        end = query.start + query.count
        i = int(cursor) if cursor else query.start
        while i < end:
            stop = min(i + query.page_size, end)
            if plan["crash_after"] is not None and (i - query.start) // query.page_size == plan["crash_after"]:
                plan["crash_after"] = None
                raise Crash(f"killed before page {(i - query.start) // query.page_size} committed")
            plan["pages_read"] += 1
            yield Page([record(query.seed, 0.0, j) for j in range(i, stop)],
                       cursor=None if last_none and stop == end else str(stop))
            i = stop

    extract.extract_method("crashy-events", query_type="synthetic")(lambda q, c, s: pages(q, c, False))
    extract.extract_method("lastnone-events", query_type="synthetic")(lambda q, c, s: pages(q, c, True))
    yield plan
    for name in ("crashy-events", "lastnone-events"):
        extract._STRATEGIES.pop(name, None)  # noqa: SLF001 - other tests must not see them


def attempt(fn, inp, n: int, details: tuple = (), beats: list | None = None):
    """Run one attempt of activity `fn` as Temporal would: attempt `n`, with `details` from before."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=n, heartbeat_details=list(details), workflow_id="wf-recovery",
                                   heartbeat_timeout=timedelta(seconds=8))
    if beats is not None:
        env.on_heartbeat = lambda *d: beats.append(d)
    return env.run(fn, inp)


def flow_key() -> str:
    return f"wf-recovery/{uuid.uuid4()}"


@pytest.mark.parametrize("crash_after", [1, 7])
def test_a_chunk_resumes_after_its_last_committed_page_whatever_the_heartbeats(db, settings, faulty_source,
                                                                               crash_after):
    acts = StreamingActivities(settings, db)
    inp = ChunkInput(flow_key(), "synthetic", "crashy-events", ChunkState(0, dict(ARGS)), max_pages=0)
    faulty_source["crash_after"] = crash_after
    with pytest.raises(Exception, match="killed before page"):
        attempt(acts.process_chunk, inp, 1)
    chunk = attempt(acts.process_chunk, inp, 2)  # no heartbeat details: they were lost with the worker

    assert faulty_source["pages_read"] == PAGES, f"{faulty_source['pages_read'] - PAGES} pages read again"
    assert chunk.counts.unchanged == 0, f"the retry loaded {chunk.counts.unchanged} committed records again"
    assert chunk.done and chunk.pages == PAGES and chunk.counts.loaded == PAGE * PAGES
    figures = ledger_figures(db)
    assert chunk.resumed and chunk.resumed_from == str(crash_after * PAGE)
    assert figures["rework_records"] == 0 and chunk.counts.unchanged == 0, (
        f"the retry redid {figures['rework_pages']} committed pages ({figures['rework_records']} records)")
    assert figures["ledger_rows_vs_table"] == 0


@pytest.mark.parametrize("crash_after", [1, 7])
def test_a_batch_extract_resumes_after_its_last_staged_page_whatever_the_heartbeats(db, settings, faulty_source,
                                                                                    crash_after):
    acts = ETLActivities(settings, db)
    key = flow_key()
    inp = ExtractBatchInput(key, f"{key}/b0", "synthetic", "crashy-events", dict(ARGS), None, batch_size=10 * PAGE * PAGES)
    faulty_source["crash_after"] = crash_after
    with pytest.raises(Exception, match="killed before page"):
        attempt(acts.extract_batch, inp, 1)
    result = attempt(acts.extract_batch, inp, 2)

    assert faulty_source["pages_read"] == PAGES, f"{faulty_source['pages_read'] - PAGES} pages read again"
    assert staged_records(db, inp.batch_key) == PAGE * PAGES
    assert result.done and result.counts.extracted == PAGE * PAGES and result.staged == PAGE * PAGES
    figures = ledger_figures(db)
    assert figures["rework_records"] == 0, f"the retry staged {figures['rework_pages']} pages again"
    assert staged_records(db, inp.batch_key) == PAGE * PAGES


def test_a_crash_after_the_last_page_does_not_read_the_chunk_again(db, settings, faulty_source):
    acts = StreamingActivities(settings, db)
    inp = ChunkInput(flow_key(), "synthetic", "lastnone-events", ChunkState(0, dict(ARGS)), max_pages=0)
    beats: list = []
    attempt(acts.process_chunk, inp, 1, beats=beats)  # its result never reached Temporal
    last = beats[-1]
    assert last[0].cursor is None  # what the old retry took for "from the start"
    chunk = attempt(acts.process_chunk, inp, 2, details=(dataclasses.asdict(last[0]),))

    assert chunk.done and chunk.pages == PAGES and chunk.counts.unchanged == 0
    assert ledger_figures(db)["rework_records"] == 0


def test_a_crash_after_the_last_page_does_not_extract_the_batch_again(db, settings, faulty_source):
    acts = ETLActivities(settings, db)
    key = flow_key()
    inp = ExtractBatchInput(key, f"{key}/b0", "synthetic", "lastnone-events", dict(ARGS), None, batch_size=10**6)
    beats: list = []
    attempt(acts.extract_batch, inp, 1, beats=beats)
    result = attempt(acts.extract_batch, inp, 2, details=(dataclasses.asdict(beats[-1][0]),))

    assert result.done and result.counts.extracted == PAGE * PAGES
    assert staged_records(db, inp.batch_key) == PAGE * PAGES, "the batch was staged twice"
    assert ledger_figures(db)["rework_records"] == 0


def test_a_transform_whose_connection_drops_mid_batch_counts_each_reject_once(db, settings, monkeypatch):
    """The transform's transaction runs again from its first page after a lost connection: the
    counts it reports must be those of the run that committed, not the sum of both."""
    acts = ETLActivities(settings, db)
    key = flow_key()
    args = {"count": PAGE * PAGES, "seed": 4243, "page_size": PAGE, "bad_rate": 0.05}
    extracted = attempt(acts.extract_batch, ExtractBatchInput(key, f"{key}/b0", "synthetic", "synthetic-events",
                                                              args, None, batch_size=PAGE * PAGES), 1)
    bad = PAGE * PAGES - len(expected_event_ids(SyntheticQuery(**args)))
    written = []
    original = Rejects.record

    def drops_once(self, strategy, items, workflow_id, cur=None):
        count = original(self, strategy, items, workflow_id, cur)
        written.append(len(items))
        if len(written) == 3:  # the third page's rejects: the server ends this connection
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return count

    monkeypatch.setattr(Rejects, "record", drops_once)
    replaced = db.connections_replaced
    result = attempt(acts.transform_batch, BatchRef(f"{key}/b0", "synthetic", "synthetic-events",
                                                    expected=extracted.staged), 1)

    assert db.connections_replaced > replaced and len(written) > PAGES, "the transaction never ran again"
    assert (result.staged, result.rejected) == (PAGE * PAGES - bad, bad)
    assert db.scalar(sql.SQL("SELECT count(*) FROM {}").format(db.tables.rejects)) == bad
    assert db.scalar(sql.SQL("SELECT sum(rows) FROM {} WHERE batch_key = %s").format(db.tables.staged_batches),
                     (f"{key}/b0",)) == PAGE * PAGES - bad


def test_overlapping_transforms_stage_a_batch_once_and_a_late_one_adds_nothing(db):
    staging = Staging(db)
    events, _ = transform(record(7, 0.0, i) for i in range(5_000))
    key = f"{flow_key()}/b0"
    with ThreadPoolExecutor(6) as pool:  # six attempts of one transform at once
        list(pool.map(lambda _: stage_events(staging, key, events), range(6)))
    counts = staging.load_staged(key, len(events))  # StagedBatchMissing if any attempt doubled the batch
    assert counts.inserted == len(events)
    stage_events(staging, key, events)  # an attempt that outlived the load
    staged = db.scalar(sql.SQL("SELECT count(*) FROM {} WHERE batch_key = %s").format(db.tables.staged_batches),
                       (key,))
    assert staged == 0


def test_defaults_move_a_dead_workers_work_within_about_ten_seconds():
    assert ETLFlowInput("synthetic", "synthetic-events").heartbeat_timeout_s <= 10
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=8))
    assert env.run(lambda: Heartbeater().interval_s) <= 2.0


async def test_workers_spread_activities_and_send_heartbeats_promptly(client, settings, task_queue):
    from etl.runtime.worker import build_worker

    worker = build_worker(client, settings, task_queue=task_queue, concurrency=2, kinds=("batch", "streaming"))
    config = worker.config()
    assert config["disable_eager_activity_execution"] is True
    assert config["max_heartbeat_throttle_interval"] <= timedelta(seconds=2)
    assert config["sticky_queue_schedule_to_start_timeout"] <= timedelta(seconds=3)


def test_a_lost_connection_leaves_other_transactions_alone(db, stack):
    db.ensure_schema()
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def long_transaction(cur) -> int:
        runs.append(1)
        cur.execute("SELECT pg_backend_pid()")
        started.set()
        release.wait(30)
        cur.execute("SELECT 1")
        return cur.fetchone()[0]

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(db.run, long_transaction)
        assert started.wait(30)

        victims: list[int] = []

        def victim(cur) -> None:
            victims.append(1)
            if len(victims) == 1:  # this connection dies; the work is retried on another
                cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        db.run(victim)
        release.set()
        assert other.result(30) == 1
    assert len(victims) == 2
    assert len(runs) == 1, "the long transaction was aborted and run again: its connection was closed"
    assert db.connections_replaced >= 1


def test_the_database_retry_budget_is_a_setting(stack, caplog):
    settings = settings_from_env({**stack.settings.env, "DB_PORT": "1", "DB_RETRY_S": "3"})
    assert settings.db_retry_s == 3
    db = Database(settings)
    db.backoff_initial = db.backoff_cap = 0.05  # many tries inside the budget
    with caplog.at_level(logging.WARNING, logger="etl.store.db"), pytest.raises(psycopg2.OperationalError):
        db._run(lambda cur: cur.execute("SELECT 1"), "probe")
    tries = sum("attempt" in r.getMessage() for r in caplog.records) + 1
    assert tries > 6, f"only {tries} tries in a 3 s budget: the budget is not what DB_RETRY_S says"


def test_statements_get_a_timeout_from_settings(stack, table_name):
    settings = settings_from_env({**stack.settings.env, "DB_STATEMENT_TIMEOUT_S": "0.5"}).replace(
        events_table=table_name)
    db = Database(settings)
    try:
        assert db.scalar("SHOW statement_timeout") == "500ms"
        with pytest.raises(psycopg2.errors.QueryCanceled):
            db.scalar("SELECT pg_sleep(5)")
    finally:
        db.close()


def test_heartbeats_stop_when_work_stops_progressing():
    beats: list = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=8))
    env.on_heartbeat = lambda *d: beats.append(d)
    stalled = threading.Event()

    def work() -> tuple[int, int]:
        with Heartbeater(stall_s=0.3, interval_s=0.02) as hb:
            hb.beat("page 1")
            for _ in range(500):  # waits for the helper to notice; no fixed sleep decides the outcome
                if hb.stalled:
                    break
                threading.Event().wait(0.01)
            stalled.set()
            at_stall = len(beats)
            threading.Event().wait(0.3)
            return at_stall, len(beats)

    at_stall, after = env.run(work)
    assert stalled.is_set() and at_stall > 1
    assert after == at_stall, "the helper went on heartbeating an activity that made no progress"


async def test_the_slot_supplier_keeps_blocking_calls_off_the_event_loop():
    loop_thread = threading.get_ident()
    calls: list[int] = []

    class Watched(MemoryGuard):
        def rss_mib(self) -> float:
            calls.append(threading.get_ident())
            return super().rss_mib()

    guard = Watched(limit_mib=1, max_wait_s=0.2, poll_s=0.02)  # always over: the supplier holds back
    supplier = MemoryAwareSlotSupplier(1, guard)
    await supplier.reserve_slot(None)
    assert supplier.try_reserve_slot(None) is None
    assert calls and loop_thread not in calls, "psutil/gc ran on the worker's event loop"


async def test_a_cancelled_slot_reservation_gives_its_slot_back():
    """The SDK may cancel `reserve_slot`; one cancelled while memory holds it back, after it had
    counted its slot, must not keep that slot: a worker losing one this way per cancellation would
    end up taking no tasks at all, its flows waiting for ever."""
    guard = MemoryGuard(limit_mib=1, max_wait_s=30, poll_s=0.02)  # always over: the supplier holds back
    supplier = MemoryAwareSlotSupplier(1, guard)
    for _ in range(3):
        reservation = asyncio.create_task(supplier.reserve_slot(None))
        await asyncio.sleep(0.2)
        assert not reservation.done(), "the reservation should be held back by memory"
        reservation.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reservation
    guard.limit_mib = 1 << 30  # memory is fine again: the one slot is free
    await asyncio.wait_for(supplier.reserve_slot(None), 5)


def test_insert_rejects_counts_every_row_it_wrote(db):
    rows = [RejectRow(key=f"k{i}", record={"i": i}, reason="test") for i in range(1_234)]
    assert Rejects(db).write(rows) == 1_234
    assert Rejects(db).write(rows) == 0


def test_an_attempt_that_outlived_its_timeout_cannot_move_a_resume_point_back(db):
    from etl.store.checkpoints import Checkpoints, Saved

    checkpoints = Checkpoints(db)
    key = f"{flow_key()}/c0"
    db.run(lambda cur: checkpoints.save(cur, key, {"cursor": "5000", "pages": 10}))
    db.run(lambda cur: checkpoints.save(cur, key, {"cursor": "2500", "pages": 5}))  # the stalled first attempt
    assert checkpoints.load(key) == Saved({"cursor": "5000", "pages": 10}, done=False)
