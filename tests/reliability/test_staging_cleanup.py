"""Staging cannot grow without bound, rows say who loaded them, and doubling is measured where
it can happen.

Every way a flow ends leaves 0 staging rows: completed and failed flows clean up themselves,
terminated ones are removed by the workers' sweep (`etl.runtime.sweeper`), which `/metrics`
reports (`etl_staging_rows_swept_total`, `etl_staging_bytes`). Every loaded row carries the
loading workflow id and load time, on fresh tables and on tables made before those columns.
And a deliberately broken load, which the table's UNIQUE constraint hides, is caught by the
ledger check the reliability cases use.
"""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest
from psycopg2 import sql
from temporalio.client import WorkflowFailureError

from etl import metrics
from etl.core import extract
from etl.core.errors import SourceError
from etl.core.extract import Page
from etl.core.models import transform
from etl.store.db import Database
from etl.store.events import Events
from etl.store.staging import Staging
from sources.synthetic.flows.events import record
from sources.synthetic.query import SyntheticQuery
from tests.reliability.checks import ledger_figures, staging_left
from tests.staged import stage_page


@pytest.fixture
def failing_source():
    """`failing-events`: synthetic pages, then a non-retryable source error on page 4."""

    def pages(query: SyntheticQuery, cursor: str | None, settings) -> Iterator[Page]:
        end = query.start + query.count
        i = int(cursor) if cursor else query.start
        while i < end:
            if (i - query.start) // query.page_size == 4:
                raise SourceError("the source refused page 4 (test)", status=404)
            stop = min(i + query.page_size, end)
            yield Page([record(query.seed, 0.0, j) for j in range(i, stop)], cursor=str(stop))
            i = stop

    extract.extract_method("failing-events", query_type="synthetic", split=None)(pages)
    yield "failing-events"
    extract._STRATEGIES.pop("failing-events", None)  # noqa: SLF001 - other tests must not see it


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_a_failed_flow_leaves_no_staging(flow_runner, db, failing_source, streaming):
    args = {"count": 5_000, "seed": 91, "page_size": 250}
    fields = {"chunk_count": 1, "chunks_in_flight": 1} if streaming else {"batch_size": 500}
    handle = await flow_runner.start(failing_source, args, streaming=streaming, **fields)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert staging_left(db) == {"staging_rows": 0, "staging_bytes": 0}


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_a_failed_flow_ends_while_its_other_activities_wait_for_a_slot(client, settings, task_queue, db,
                                                                          failing_source, streaming):
    """One activity slot: when the failure comes, the flow's other activities are still queued, so
    cancelling them and the cleanup after it race on the task queue. The flow must still fail, at
    once, and clean up. (A cancelled activity that ends without the workflow waiting for it gave
    the worker a workflow task with nothing for the workflow in it; the completion it sent lacked
    the workflow's PINNED behaviour, the server then kept re-sending workflow tasks, and the
    cleanup activity was never handed out: the flow hung for good.)"""
    from tests.flows import FlowRunner

    args = {"count": 5_000, "seed": 94, "page_size": 250}
    fields = ({"chunk_count": 4, "chunks_in_flight": 4} if streaming
              else {"batch_size": 250, "batches_in_flight": 4})
    async with FlowRunner(client, settings, task_queue, concurrency=1) as runner:
        handle = await runner.start(failing_source, args, streaming=streaming, **fields)
        try:
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(asyncio.shield(handle.result()), timeout=60)
        except asyncio.TimeoutError:
            pytest.fail("the failed flow did not end within 60 s")
    assert "the source refused page 4" in str(failed.value.cause.cause)
    assert staging_left(db) == {"staging_rows": 0, "staging_bytes": 0}


async def test_a_completed_streaming_flow_leaves_no_resume_points(run_flow, db):
    summary = await run_flow("synthetic-events", {"count": 3_000, "seed": 92, "page_size": 500}, streaming=True,
                             chunk_count=2, chunks_in_flight=2)
    assert summary["loaded"] == 3_000
    assert staging_left(db) == {"staging_rows": 0, "staging_bytes": 0}


async def test_a_terminated_flows_staging_is_swept_and_counted(flow_runner, client, db):
    from etl.runtime.sweeper import sweep_once

    staging = Staging(db)
    handle = await flow_runner.start("synthetic-events", {"count": 400_000, "seed": 93, "page_size": 500},
                                     batch_size=20_000)
    for _ in range(600):  # until the flow has something in staging
        if staging.rows():
            break
        await asyncio.sleep(0.05)
    await handle.terminate("test: terminated mid-run")
    await asyncio.sleep(0.5)  # let the worker's last in-flight activity give up its page
    assert staging.rows() > 0, "nothing in staging to sweep: the test proves nothing"

    swept_before = metrics.value(metrics.STAGING_SWEPT)
    removed = 0
    for _ in range(40):  # activities of the terminated run may still commit a page while they notice
        removed += await sweep_once(client, staging, retention_s=3600, grace_s=0)
        if not staging.rows():
            break
        await asyncio.sleep(0.25)
    assert staging_left(db) == {"staging_rows": 0, "staging_bytes": 0}
    assert removed > 0 and metrics.value(metrics.STAGING_SWEPT) == swept_before + removed
    assert metrics.REGISTRY.get_sample_value("etl_staging_bytes") == 0
    assert "etl_staging_rows_swept_total" in metrics.render()


async def test_the_sweep_keeps_running_flows_and_removes_what_passed_retention(client, db):
    from etl.runtime.sweeper import sweep_once

    staging = Staging(db)
    running = f"not-a-flow/{'0' * 8}-0000-0000-0000-{'0' * 12}"
    stage_page(staging, f"{running}/b0", 0, [{"x": 1}])
    assert await sweep_once(client, staging, retention_s=3600, grace_s=3600) == 0  # too young to judge
    assert await sweep_once(client, staging, retention_s=3600, grace_s=0) == 1  # no such run: gone
    stage_page(staging, f"{running}/b1", 0, [{"x": 1}])
    db.run(lambda cur: cur.execute(sql.SQL("UPDATE {} SET created_at = now() - interval '2 hours'").format(
        db.tables.raw)))
    assert await sweep_once(client, staging, retention_s=3600, grace_s=3600) == 1  # past retention


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_every_row_says_which_flow_loaded_it_and_when(flow_runner, db, streaming):
    fields = {"chunk_count": 2} if streaming else {"batch_size": 1_000}
    handle = await flow_runner.start("synthetic-events", {"count": 3_000, "seed": 94, "page_size": 500},
                                     streaming=streaming, **fields)
    await handle.result()
    rows = db.run(lambda cur: (cur.execute(sql.SQL(
        "SELECT loaded_by, count(*), count(loaded_at) FROM {} GROUP BY loaded_by").format(db.tables.events)),
        cur.fetchall())[1])
    assert rows == [(handle.id, 3_000, 3_000)]


def test_tables_made_before_provenance_get_its_columns(settings):
    old = sql.SQL("CREATE TABLE {} (id BIGSERIAL PRIMARY KEY, source_kind_id TEXT, parent_item_id TEXT, "
                  "event_id TEXT UNIQUE NOT NULL, event_type TEXT, relation_type TEXT, employee_id TEXT, "
                  "event_time_utc TIMESTAMP NOT NULL, week DATE NOT NULL, timezone TEXT, event_time TIMESTAMP, "
                  "event_properties JSONB, relation_properties JSONB, metrics JSONB)")
    db = Database(settings)
    try:
        db._run(lambda cur: cur.execute(old.format(db.tables.events)), "an old events table")
        events, _ = transform(record(95, 0.0, i) for i in range(10))
        assert Events(db).insert(events, loaded_by="wf-old").inserted == 10
        assert db.scalar(sql.SQL("SELECT count(*) FROM {} WHERE loaded_by = 'wf-old' AND loaded_at IS NOT NULL")
                         .format(db.tables.events)) == 10
    finally:
        db.close()


def broken_load(db: Database, unit_key: str, events) -> None:
    """A load with a bug the UNIQUE constraint hides: it replaces rows (DELETE, then INSERT) instead
    of skipping those already present, so a retry counts every row as inserted again."""
    from etl.store.checkpoints import Checkpoints, Commit

    checkpoints = Checkpoints(db)
    ids = [e.event_id for e in events]
    db.run(lambda cur: cur.execute(sql.SQL("DELETE FROM {} WHERE event_id = ANY(%s)").format(db.tables.events),
                                   (ids,)))
    Events(db).insert(events, then=lambda cur, w: checkpoints.log(cur, Commit(unit_key, "page", len(events),
                                                                                  w.inserted, 0)))


def test_the_doubling_check_catches_a_load_the_unique_constraint_hides(db):
    from etl.store.checkpoints import Checkpoints, Commit

    events, _ = transform(record(96, 0.0, i) for i in range(200))
    checkpoints = Checkpoints(db)
    Events(db).insert(events, then=lambda cur, w: checkpoints.log(cur, Commit("good/c0", "page", 200, w.inserted, 0)))
    assert ledger_figures(db)["ledger_rows_vs_table"] == 0  # a correct load balances

    broken_load(db, "broken/c0", events)  # run again, as a retry would: every row counted again
    ids = db.run(lambda cur: (cur.execute(sql.SQL("SELECT event_id FROM {}").format(db.tables.events)),
                              [r[0] for r in cur.fetchall()])[1])
    assert len(ids) == len(set(ids)) == 200  # the old check: "doubled 0"
    assert ledger_figures(db)["ledger_rows_vs_table"] == 200  # the new one sees every row loaded twice
