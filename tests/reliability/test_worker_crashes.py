"""Worker crashes: the only worker of a flow is SIGKILLed three times at random points and a new
worker process takes over each time; the flow completes with every event exactly once.

Once it has finished, the same flow is launched again, as an operator who saw the failures
might: it must load nothing. The flow runs with the default heartbeat timeout, and each case
measures what a kill costs: the records committed again (from the ledger: at most one page per
fault), the seconds from each kill to the next commit on the new worker, and the staging left
at the end (0 rows, 0 bytes). The kill points are drawn from the printed chaos seed (progress
thresholds plus a random delay), so `RELIABILITY_SEED=<seed>` replays a failed run's choices;
the source is paced (`page_pause_s`) so the flow is still running when the last kill comes.
The single-kill case, and the check that a streaming chunk resumes from its heartbeat, live
in tests/test_crash.py.

The change-capture cases run over a table that holds an older version of every event (a
different title), in `upsert` (streaming) and `history` (batch) load mode: every event is
updated exactly once whatever the kills redo (the ledger's `updated` adds up to the events,
`history` keeps exactly one earlier version of each), and the relaunch updates nothing.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from psycopg2 import sql

from etl.core.models import transform
from etl.launch.plan import plan_flow, start_flow
from etl.store.checkpoints import Checkpoints, Commit
from etl.store.events import Events
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.flows.events import record as synthetic_record
from sources.synthetic.query import SyntheticQuery
from tests.reliability.checks import (
    assert_exact,
    reconcile,
    replay,
    retried_activities,
    staging_left,
    wait_for_extracted,
    within,
)
from tests.workers import WorkerProcess

COUNT = 100_000
KILLS = 3


def ledger_commits(db) -> int:
    return db.scalar(sql.SQL("SELECT count(*) FROM {}").format(db.tables.ledger))


async def seconds_to_progress(db, killed_at: float, commits_at_kill: int, result: asyncio.Future,
                              timeout: float = 120) -> float | None:
    """Seconds from a kill until the next page or load commits on the new worker (or the flow
    completes: the kill may have come after the last commit)."""
    while time.monotonic() - killed_at < timeout:
        if result.done() or await asyncio.to_thread(ledger_commits, db) > commits_at_kill:
            return round(time.monotonic() - killed_at, 1)
        await asyncio.sleep(0.1)
    return None


def prefill_older_versions(db, args: dict) -> int:
    """Every event of `args`' run, as an older version (another title), loaded the way a first run
    would have (its rows in the ledger too)."""
    older, _ = transform(dict(r, event_properties={**r["event_properties"], "title": "older"})
                         for r in (synthetic_record(args["seed"], args["bad_rate"], i) for i in range(args["count"])))
    log = Checkpoints(db).log
    for i in range(0, len(older), 5_000):
        page = older[i:i + 5_000]
        Events(db).insert(page, loaded_by="wf-older", mode="insert",
                          then=lambda cur, w, n=len(page), p=i: log(cur, Commit("older", "page", n, w.inserted, p)))
    return len(older)


@pytest.mark.parametrize(("streaming", "mode"), [(False, "insert"), (True, "insert"), (False, "history"),
                                                 (True, "upsert")],
                         ids=["batch", "streaming", "batch-history", "streaming-upsert"])
async def test_three_sigkills_at_random_points(client, settings, db, task_queue, tmp_path, streaming, mode, case,
                                               chaos_seed):
    rng = random.Random(chaos_seed)
    # Paced like a slow API (at least 1 s of pauses per 25-page call), so each kill lands while the
    # flow runs however fast this machine is: unpaced, the streaming flow can finish the last
    # quarter between two progress polls and leave the third kill nothing to hit.
    args = {"count": COUNT, "seed": 60 + streaming, "bad_rate": 0.01, "page_size": 500, "page_pause_s": 0.04}
    # A small history budget makes the flow continue as new during the run, so kills also meet
    # runs that have just been replaced.
    fields = ({"chunk_count": 4, "chunks_in_flight": 2, "pages_per_call": 25, "history_budget": 40} if streaming
              else {"batch_size": 5_000, "history_budget": 100})
    # Progress moves a call (or a batch) at a time, and the last calls in flight, restarted together
    # after a kill, end together: the most a query can show before the flow is done is COUNT less
    # what they carry (75% for the streaming flow here). A kill point past it is never seen.
    step = (fields["pages_per_call"] * args["page_size"] * fields["chunks_in_flight"] if streaming
            else fields["batch_size"])
    last_seen = min(0.8, (COUNT - step) / COUNT)
    # One kill in each part of the run, then a random delay: a random moment, not a round number.
    parts = ((0.05, 0.3), (0.3, 0.55), (0.55, last_seen))
    thresholds = [int(COUNT * rng.uniform(lo, hi)) for lo, hi in parts]
    delays = [round(rng.uniform(0.0, 0.5), 2) for _ in range(KILLS)]
    kind = "streaming_worker" if streaming else "etl_worker"
    plan = plan_flow(settings, "synthetic-events", args, streaming=streaming, task_queue=task_queue,
                     workflow_id=f"chaos-kill-{task_queue}", load_mode=mode, **fields)  # the default heartbeat timeout
    older = prefill_older_versions(db, args) if mode != "insert" else 0
    name = f"crash-{'streaming' if streaming else 'batch'}" + ("" if mode == "insert" else f"-{mode}")
    title = "Worker SIGKILLed 3 times" + ("" if mode == "insert" else f", {mode} over older versions")
    record = case(name, title, plan.workflow_name,
                  f"SIGKILL of the flow's only worker process at {KILLS} random points (seed {chaos_seed}); "
                  "a new worker process started after each kill; then the same flow launched again",
                  records=COUNT, page_size=args["page_size"], bad_rate=args["bad_rate"], **fields)
    context = f"chaos seed {chaos_seed}, kills after {thresholds} extracted + {delays} s"

    workers = [WorkerProcess(settings, task_queue, kind, log_path=tmp_path / "worker0.log")]
    kills = []
    recoveries = []
    try:
        handle, _ = await start_flow(client, plan)
        result = asyncio.ensure_future(handle.result())
        for n, (threshold, delay) in enumerate(zip(thresholds, delays), 1):
            progress = await wait_for_extracted(client, plan.workflow_id, threshold, result, f"kill {n}")
            await asyncio.sleep(delay)
            workers[-1].kill()
            killed_at, commits = time.monotonic(), await asyncio.to_thread(ledger_commits, db)
            kills.append({"after_extracted": progress["extracted"], "delay_s": delay, "stage": progress["stage"]})
            workers.append(WorkerProcess(settings, task_queue, kind, log_path=tmp_path / f"worker{n}.log"))
            recovery = await seconds_to_progress(db, killed_at, commits, result)
            kills[-1]["to_progress_s"] = recovery
            recoveries.append(recovery)
        summary = await within(result, 300, client, [plan.workflow_id])
        # Then, as an operator who saw the failures might, launch the same flow again: it must load nothing.
        again_handle, _ = await start_flow(client, plan)
        again = await within(again_handle.result(), 300, client, [plan.workflow_id])
    finally:
        for worker in workers:
            worker.stop()

    expected = expected_event_ids(SyntheticQuery(**args))
    figures = reconcile(db, expected, [summary, again], expected_rejects=COUNT - len(expected))
    retried = await retried_activities(client, plan.workflow_id)
    replayed = await replay(client, plan.workflow_id)
    left = staging_left(db)
    updates = db.scalar(sql.SQL("SELECT coalesce(sum(updated), 0) FROM {}").format(db.tables.ledger))
    versions = db.run(lambda cur: (cur.execute(sql.SQL("SELECT count(*), count(DISTINCT event_id) FROM {}").format(
        db.tables.history)), cur.fetchone())[1])
    record.record(figures, kills=kills, workers=len(workers), retried_activities=retried, replayed_runs=replayed,
                  relaunch_loaded=again.loaded, seed=chaos_seed, page_size=args["page_size"], load_mode=mode,
                  updated=summary.updated, ledger_updated=updates, history_versions=versions[0],
                  to_progress_s=max((r for r in recoveries if r is not None), default=None), **left)

    assert len(kills) == KILLS, context
    assert_exact(figures, context)
    assert again.loaded == again.updated == 0 and again.unchanged == len(expected), (
        f"the relaunch loaded or updated again ({context})")
    if mode == "insert":
        assert summary.updated == updates == 0 and versions == (0, 0)
    else:  # every older version replaced exactly once, however often the kills made a page commit again
        assert summary.updated == updates == older == len(expected), f"updated {summary.updated}, {updates} ({context})"
        assert db.scalar(sql.SQL("SELECT count(*) FROM {} WHERE event_properties->>'title' = 'older'").format(
            db.tables.events)) == 0
        assert versions == ((older, older) if mode == "history" else (0, 0)), f"history {versions} ({context})"
    assert retried >= 1, f"no activity was retried: the kills hit no work in flight ({context})"
    assert figures["rework_records"] <= KILLS * args["page_size"], (
        f"{figures['rework_records']} records committed again after {KILLS} kills: more than a page a fault ({context})")
    assert None not in recoveries, f"no progress within 120 s of a kill ({context}, {kills})"
    assert left == {"staging_rows": 0, "staging_bytes": 0}, f"staging left behind: {left} ({context})"
