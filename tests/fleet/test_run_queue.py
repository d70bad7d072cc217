"""`scripts/run_queue.py` against the real stack: a queue of flows, a re-run, and a failing flow."""

from __future__ import annotations

import json
import re

from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery
from tests.fleet.conftest import (
    load_script,
    run_main_in_thread,
    run_script,
    script_env,
    synthetic_flows,
    write_flows,
)


async def count_runs(client, task_queue: str, workflow_type: str = "ETLFlow") -> int:
    return len([w async for w in client.list_workflows(f"TaskQueue='{task_queue}' AND WorkflowType='{workflow_type}'")])


async def test_queue_of_ten_flows_reports_them_and_a_rerun_starts_nothing(flow_runner, client, db, settings,
                                                                           task_queue, tmp_path):
    flows = synthetic_flows(10)
    path = write_flows(tmp_path / "flows.json", flows)
    env = script_env(settings, task_queue)

    first = await run_script("run_queue.py", str(path), "--concurrency", "4", env=env)

    assert first.returncode == 0, first.stderr
    assert "10/10" in first.stderr  # the tqdm bar reached the end
    expected = set().union(*(expected_event_ids(SyntheticQuery(**f["args"])) for f in flows))
    assert db.count_events() == len(expected)
    assert "started 10, attached to 0 already running, reused 0 completed" in first.stdout
    rows = [line for line in first.stdout.splitlines() if line.startswith("synthetic-events-")]
    assert len(rows) == 10 and all(" completed " in row for row in rows)
    total = re.search(r"TOTAL: 10 flows\s+10 ok, 0 failed\s+([\d,]+)", first.stdout)
    assert total and int(total.group(1).replace(",", "")) == len(expected)

    again = await run_script("run_queue.py", str(path), env=env)

    assert again.returncode == 0, again.stderr
    assert "nothing new started: all 10 flows had already completed" in again.stdout
    assert again.stdout.count("already completed") == 11  # the note line and the 10 rows
    assert await count_runs(client, task_queue) == 10  # no new workflow run was started
    assert db.count_events() == len(expected)


async def test_a_failing_flow_makes_the_queue_exit_non_zero_naming_it(flow_runner, db, settings, task_queue,
                                                                      tmp_path, broken_strategy, monkeypatch):
    flows = synthetic_flows(2, first_seed=200) + [{"strategy": broken_strategy, "args": {"count": 10, "seed": 9}}]
    path = write_flows(tmp_path / "flows.yaml", flows)  # JSON is valid YAML: read through the YAML path

    result = await run_main_in_thread(load_script("run_queue").main, [str(path), "--json"],
                                      script_env(settings, task_queue), monkeypatch)

    assert result.returncode == 1
    report = json.loads(result.stdout)
    failed = [f for f in report["flows"] if f["status"] == "failed"]
    assert [f["strategy"] for f in failed] == [broken_strategy]
    assert "synthetic-broken refuses every request" in failed[0]["error"]
    assert failed[0]["workflow_id"].startswith("synthetic-broken-")
    assert report["totals"]["completed"] == 2 and report["totals"]["failed"] == 1

    table = await run_main_in_thread(load_script("run_queue").main, [str(path)],
                                     script_env(settings, task_queue), monkeypatch)
    assert table.returncode == 1
    assert f"1 flow failed:\n  {failed[0]['workflow_id']}: " in table.stderr
    assert "restarted (was failed)" in table.stdout  # the failed flow is retried; the others are reused
    assert table.stdout.count("already completed") == 2
