"""PostgreSQL and the Temporal server restart mid-run, twice each: once cleanly, once as a crash.
The flow completes with every event exactly once, on the same worker processes.

These cases stop servers, so they run on a private stack of their own (module-scoped), never
on the session stack other tests share. Its PostgreSQL trades durability for speed as every
test server does, except `synchronous_commit`, which stays on (per database): with it off, a
crash loses transactions PostgreSQL had already acknowledged, which no client can survive.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import pytest_asyncio
from temporalio.service import RPCError

from etl.core.settings import Settings, settings_from_env
from etl.devstack.servers import EmbeddedPostgres, TemporalDevServer, private_stack
from etl.launch.plan import plan_flow, start_flow
from etl.store.db import Database
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.reliability.checks import assert_exact, reconcile, replay, staging_left, wait_for_extracted, within
from tests.workers import WorkerProcess

COUNT = 60_000


@dataclass
class PrivateStack:
    pg: EmbeddedPostgres
    temporal: TemporalDevServer
    settings: Settings


@pytest.fixture(scope="module")
def private():
    root = Path(tempfile.mkdtemp(prefix="etl-reliability-"))
    try:
        with private_stack(root) as (pg, temporal, env):
            pg.psql(f"ALTER DATABASE {pg.database} SET synchronous_commit = on")
            # As the session stack: the pytest process is big, and no memory backpressure is wanted here.
            settings = settings_from_env({**env, "DB_MAX_CONN": "20", "MEMORY_LIMIT_MIB": "8192"})
            try:
                yield PrivateStack(pg, temporal, settings)
            finally:
                for db in [d for d in Database._instances.values() if d.settings.db_port == pg.port]:
                    db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The conftest fixtures of the same names, pointed at the private stack.
@pytest.fixture
def settings(private: PrivateStack, table_name: str) -> Settings:
    return private.settings.replace(events_table=table_name)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(private: PrivateStack):
    from etl.runtime.client import connect

    return await connect(private.settings)


async def result_across_outages(handle, timeout: float = 300):
    """The flow's result; the client's long poll can fail while the server is away, so ask again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncio.wait_for(handle.result(), max(1.0, deadline - loop.time()))
        except RPCError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_postgres_restarts_mid_run(private, flow_runner, client, db, settings, streaming, case, chaos_seed):
    rng = random.Random(chaos_seed)
    args = {"count": COUNT, "seed": 70 + streaming, "bad_rate": 0.01, "page_size": 500}
    fields = ({"chunk_count": 4, "chunks_in_flight": 2, "pages_per_call": 10} if streaming
              else {"batch_size": 2_500})
    restarts = [("fast", rng.uniform(0.1, 0.4), rng.uniform(0.5, 4.0)),
                ("immediate", rng.uniform(0.5, 0.8), rng.uniform(0.5, 4.0))]
    record = case(f"postgres-restart-{'streaming' if streaming else 'batch'}", "PostgreSQL restarted twice",
                  "StreamingETLFlow" if streaming else "ETLFlow",
                  f"PostgreSQL stopped mid-run and started again, twice: a clean stop (`pg_ctl -m fast`) and a "
                  f"crash (`-m immediate`), down {restarts[0][2]:.1f} s and {restarts[1][2]:.1f} s (seed {chaos_seed})",
                  records=COUNT, page_size=args["page_size"], bad_rate=args["bad_rate"], **fields)
    context = f"chaos seed {chaos_seed}, restarts {restarts}"
    replaced_before = db.connections_replaced

    handle = await flow_runner.start("synthetic-events", args, streaming=streaming, heartbeat_timeout_s=5, **fields)
    result = asyncio.ensure_future(handle.result())
    done = []
    for mode, at, down in restarts:
        progress = await wait_for_extracted(client, handle.id, int(COUNT * at), result, f"the {mode} restart")
        await asyncio.to_thread(private.pg.stop, mode)
        assert not private.pg.running()
        await asyncio.sleep(down)
        await asyncio.to_thread(private.pg.start)
        done.append({"mode": mode, "after_extracted": progress["extracted"], "down_s": round(down, 2)})
    summary = await within(result, 300, client, [handle.id])

    expected = expected_event_ids(SyntheticQuery(**args))
    figures = reconcile(db, expected, [summary], expected_rejects=COUNT - len(expected))
    replaced = db.connections_replaced - replaced_before
    left = staging_left(db)
    record.record(figures, restarts=done, connections_replaced=replaced, replayed_runs=await replay(client, handle.id),
                  seed=chaos_seed, **left)
    assert_exact(figures, context)
    assert replaced >= 1, "no connection was replaced: the restarts went unnoticed"
    assert left == {"staging_rows": 0, "staging_bytes": 0}, f"staging left behind: {left} ({context})"


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_temporal_server_restarts_mid_run(private, client, db, settings, task_queue, tmp_path, streaming,
                                                case, chaos_seed):
    rng = random.Random(chaos_seed)
    args = {"count": COUNT, "seed": 80 + streaming, "bad_rate": 0.01, "page_size": 500}
    fields = ({"chunk_count": 4, "chunks_in_flight": 2, "pages_per_call": 10} if streaming
              else {"batch_size": 2_500})
    restarts = [("stop", rng.uniform(0.1, 0.4), rng.uniform(0.5, 3.0)),
                ("kill", rng.uniform(0.5, 0.8), rng.uniform(0.5, 3.0))]
    record = case(f"temporal-restart-{'streaming' if streaming else 'batch'}", "Temporal server restarted twice",
                  "StreamingETLFlow" if streaming else "ETLFlow",
                  "the Temporal dev server stopped mid-run and started again on the same SQLite file, twice: "
                  f"SIGTERM and SIGKILL, down {restarts[0][2]:.1f} s and {restarts[1][2]:.1f} s (seed {chaos_seed}); "
                  "the worker process is never restarted",
                  records=COUNT, page_size=args["page_size"], bad_rate=args["bad_rate"], **fields)
    context = f"chaos seed {chaos_seed}, restarts {restarts}, worker log {tmp_path / 'worker.log'}"
    kind = "streaming_worker" if streaming else "etl_worker"
    plan = plan_flow(settings, "synthetic-events", args, streaming=streaming, task_queue=task_queue,
                     workflow_id=f"chaos-temporal-{task_queue}", heartbeat_timeout_s=5, **fields)

    worker = WorkerProcess(settings, task_queue, kind, log_path=tmp_path / "worker.log")
    done = []
    try:
        handle, _ = await start_flow(client, plan)
        for how, at, down in restarts:
            # No result future here: its long poll may fail while the server is down.
            progress = await wait_for_extracted(client, plan.workflow_id, int(COUNT * at), None,
                                                f"the Temporal {how}")
            if how == "stop":
                await asyncio.to_thread(private.temporal.stop)
            else:
                server = psutil.Process(private.temporal.pid())
                server.kill()
                server.wait(10)
            await asyncio.sleep(down)
            await asyncio.to_thread(private.temporal.start)
            done.append({"how": how, "after_extracted": progress["extracted"], "down_s": round(down, 2)})
        summary = await result_across_outages(handle)
        assert worker.proc.poll() is None, f"the worker process exited ({context})"
    finally:
        worker.stop()

    expected = expected_event_ids(SyntheticQuery(**args))
    figures = reconcile(db, expected, [summary], expected_rejects=COUNT - len(expected))
    left = staging_left(db)
    record.record(figures, restarts=done, replayed_runs=await replay(client, plan.workflow_id), seed=chaos_seed,
                  **left)
    assert_exact(figures, context)
    assert left == {"staging_rows": 0, "staging_bytes": 0}, f"staging left behind: {left} ({context})"
