"""The durable fan-out: it outlives the launcher, records failed children without stopping, and
continues as new without losing a child."""

from __future__ import annotations

import asyncio
import signal
import sys

from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Replayer

from etl.core.settings import PROJECT_ROOT
from etl.launch.fanout import FanOutPlan, child_of, submit_fanout
from etl.launch.plan import plan_flow
from etl.runtime.history import histories
from etl.workflows import search_attributes as sa
from etl.workflows.batch import ETLFlow
from etl.workflows.fanout import FanOutFlow
from etl.workflows.fleet_io import FanOutInput, FanOutSummary
from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.fleet.conftest import run_script, script_env, synthetic_flows, write_flows


async def test_durable_launch_survives_killing_the_launcher(flow_runner, client, db, settings, task_queue,
                                                            tmp_path):
    flows = synthetic_flows(6, count=1500, first_seed=300)
    path = write_flows(tmp_path / "team.json", flows)
    env = script_env(settings, task_queue)
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_ROOT / "scripts" / "run_queue.py"), str(path), "--durable", "--concurrency", "2",
        cwd=PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    first_line = (await asyncio.wait_for(launcher.stdout.readline(), 60)).decode()
    assert first_line.startswith("FanOutFlow fanout-6-") and ": started; 6 flows" in first_line, first_line
    fanout_id = first_line.split()[1].rstrip(":")

    launcher.send_signal(signal.SIGKILL)  # the launcher's machine goes away
    await launcher.wait()
    assert launcher.returncode == -signal.SIGKILL

    summary: FanOutSummary = await client.get_workflow_handle(fanout_id, result_type=FanOutSummary).result()
    attrs = (await client.get_workflow_handle(fanout_id).describe()).typed_search_attributes
    assert (attrs.get(sa.ETL_SOURCE), attrs.get(sa.ETL_STRATEGY)) == ("synthetic", "synthetic-events")

    expected = [expected_event_ids(SyntheticQuery(**f["args"])) for f in flows]
    assert summary.completed == 6 and summary.failed == 0
    assert sorted(c.summary.loaded for c in summary.children) == sorted(len(ids) for ids in expected)
    assert all(c.workflow_id.startswith(f"{fanout_id}--synthetic-events-") for c in summary.children)
    assert summary.loaded == db.count_events() == sum(len(ids) for ids in expected)

    again = await run_script("run_queue.py", str(path), "--durable", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"FanOutFlow {fanout_id}: already completed; 6 flows")
    assert again.stdout.count(f"FanOutFlow {fanout_id}:") == 1  # the line is printed once, not again above the table
    assert again.stdout.count(" completed ") >= 6


async def test_fanout_records_a_failed_child_continues_as_new_and_retries_only_the_failed(
        flow_runner, client, db, settings, task_queue, broken_strategy):
    plans = [plan_flow(settings, "synthetic-events", {"count": 100, "seed": 400 + i}, task_queue=task_queue)
             for i in range(4)]
    plans.append(plan_flow(settings, broken_strategy, {"count": 5, "seed": 9}, task_queue=task_queue))
    # A tiny history budget forces the fan-out to continue as new between children.
    plan = FanOutPlan(f"fanout-test-{task_queue}", task_queue,
                      FanOutInput([child_of(p) for p in plans], concurrency=1, history_budget=20))

    handle, note = await submit_fanout(client, plan)
    summary: FanOutSummary = await handle.result()

    assert note == "started" and summary.runs > 1
    assert (summary.completed, summary.failed) == (4, 1)
    failed = [c for c in summary.children if c.status == "failed"]
    assert failed[0].workflow_id == f"{plan.workflow_id}--{plans[-1].workflow_id}"
    assert "synthetic-broken refuses every request" in failed[0].error
    assert db.count_events() == summary.loaded > 0

    # The source is fixed; submitting the same fan-out again retries only the failed child.
    from etl.core import extract
    from sources.synthetic.flows.events import extract_events

    extract._STRATEGIES.pop(broken_strategy)
    extract.extract_method(broken_strategy, query_type="synthetic")(extract_events)
    handle, note = await submit_fanout(client, plan)
    retried: FanOutSummary = await handle.result()

    assert note == "retrying 1 failed flow"
    assert (retried.completed, retried.failed) == (5, 0)
    runs = [w.id async for w in client.list_workflows(f"TaskQueue='{task_queue}' AND WorkflowType='ETLFlow'")]
    # Each child that completed ran once; the failed one ran twice.
    assert sorted(runs) == sorted([c.workflow_id for c in summary.children] + [failed[0].workflow_id])
    assert db.count_events() == retried.loaded == summary.loaded + len(expected_event_ids(SyntheticQuery(count=5, seed=9)))


async def test_a_fanout_started_without_source_and_strategy_takes_those_its_children_share(
        flow_runner, client, settings, task_queue):
    """As a scheduled run starts its fan-out: only `EtlFlowKind` given; the fan-out marks itself."""
    plans = [plan_flow(settings, "synthetic-events", {"count": 50, "seed": 420 + i}, task_queue=task_queue)
             for i in range(2)]
    handle = await client.start_workflow(
        "FanOutFlow", FanOutInput([child_of(p) for p in plans]), id=f"fanout-bare-{task_queue}",
        task_queue=task_queue, result_type=FanOutSummary,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ETL_FLOW_KIND, "fanout")]))
    assert (await handle.result()).completed == 2
    attrs = (await handle.describe()).typed_search_attributes
    assert (attrs.get(sa.ETL_SOURCE), attrs.get(sa.ETL_STRATEGY)) == ("synthetic", "synthetic-events")
    # The new command is behind `workflow.patched`: a fresh history replays (recorded ones: test_replay).
    for history in await histories(client, handle.id):
        await Replayer(workflows=[FanOutFlow, ETLFlow]).replay_workflow(history)
