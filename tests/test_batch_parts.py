"""ETLFlow with parts extracted in parallel, and with staging lost under it (what a crash of
PostgreSQL does to its UNLOGGED staging tables): the table and the counts stay exact."""

from __future__ import annotations

import uuid

from psycopg2 import sql
from temporalio import activity
from temporalio.worker import Replayer

from etl.activities.batch import ETLActivities
from etl.launch.plan import plan_flow, start_flow
from etl.runtime.history import histories
from etl.runtime.worker import build_worker
from etl.workflows.batch import ETLFlow
from etl.workflows.flow_io import BatchRef, TransformResult
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery

ARGS = {"count": 12_000, "seed": 61, "bad_rate": 0.01, "page_size": 500}


def event_ids(db) -> set[str]:
    return set(db.run(lambda cur: (cur.execute(sql.SQL("SELECT event_id FROM {}").format(db.tables.events)),
                                   [r[0] for r in cur.fetchall()])[1]))


def assert_exact(db, summary: dict, args: dict) -> None:
    expected = expected_event_ids(SyntheticQuery(**args))
    assert event_ids(db) == expected
    assert summary["extracted"] == args["count"]
    assert summary["loaded"] == len(expected)
    assert summary["rejected"] == args["count"] - len(expected) > 0
    assert summary["unchanged"] == 0
    assert db.count_rejects() == summary["rejected"]


async def test_parts_extracted_in_parallel_load_every_event_once(flow_runner, client, db):
    handle = await flow_runner.start("synthetic-events", ARGS, batch_size=1_000, partitions=3, batches_in_flight=4,
                                     history_budget=60)
    summary = (await handle.result()).__dict__
    assert_exact(db, summary, ARGS)
    assert summary["batches"] >= 12
    runs = await histories(client, handle.id)
    assert summary["runs"] == len(runs) > 1  # the parts' cursors survived continue-as-new
    starts = [e for run in runs for e in run.events if e.HasField("activity_task_scheduled_event_attributes")]
    names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in starts]
    assert names.count("split_extract") == 1
    replayer = Replayer(workflows=[ETLFlow])
    for history in runs:
        await replayer.replay_workflow(history)


class LosingStaging(ETLActivities):
    """Empties both staging tables the first time batch 1 is transformed, as a crash of PostgreSQL
    empties UNLOGGED tables: every batch staged at that moment is lost, not just batch 1."""

    emptied = False

    @activity.defn(name="transform_batch")
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        if ref.batch_key.endswith("/b1") and not LosingStaging.emptied:
            LosingStaging.emptied = True
            t = self.db.tables
            self.db.run(lambda cur: cur.execute(sql.SQL("TRUNCATE {}, {}").format(t.raw, t.staged_batches)))
        return super().transform_batch(ref)


async def test_a_batch_whose_staging_was_lost_is_extracted_again(client, settings, db, monkeypatch):
    queue = f"lost-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("etl.runtime.worker.ETLActivities", LosingStaging)  # the worker builds ours
    worker = build_worker(client, settings, task_queue=queue, concurrency=4, kinds=("batch",))
    async with worker:
        plan = plan_flow(settings, "synthetic-events", ARGS, task_queue=queue, workflow_id=f"test-lost-{queue}",
                         batch_size=2_000, partitions=2, batches_in_flight=4)
        handle, _ = await start_flow(client, plan)
        summary = (await handle.result()).__dict__
    assert LosingStaging.emptied
    assert_exact(db, summary, ARGS)
    runs = await histories(client, handle.id)
    extracts = [e for run in runs for e in run.events if e.HasField("activity_task_scheduled_event_attributes")
                and e.activity_task_scheduled_event_attributes.activity_type.name == "extract_batch"]
    assert len(extracts) > summary["batches"]  # some batch was extracted again
