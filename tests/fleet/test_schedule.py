"""`scripts/schedule.py`: a 1-minute schedule whose runs extract consecutive windows.

The schedule is created paused and triggered twice (a trigger is a tick on demand), so the test
does not wait for the clock. A test-only source declares `since`/`until` as its window and emits one event whose
id is its window, so the events table shows which window each run really extracted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.worker import Replayer

from etl.core.query import Query
from etl.launch.schedule_view import describe_schedule
from etl.runtime.history import histories
from etl.workflows.batch import ETLFlow
from etl.workflows.fanout import FanOutFlow
from etl.workflows.fleet_io import ScheduledFlowInput
from etl.workflows.scheduled import ScheduledFlow
from etl.workflows.search_attributes import ETL_QUERY
from etl.workflows.streaming import StreamingETLFlow
from tests.fleet.conftest import load_script, run_main_in_thread, run_script, script_env


@dataclass(frozen=True)
class WindowQuery(Query):
    since: datetime
    until: datetime
    summary_fields = ("since", "until")
    window_fields = ("since", "until")


@pytest.fixture
def window_source():
    from etl.core import extract, query
    from etl.core.extract import Page
    from sources.synthetic.flows.events import record

    def extract_window(q: WindowQuery, cursor, settings):
        raw = record(7, 0.0, 1)
        raw["event_id"] = f"window|{q.since.isoformat()}|{q.until.isoformat()}"
        raw["event_time_utc"] = q.since.isoformat()
        yield Page([raw])

    query.query_type("fleetwindow")(WindowQuery)
    extract.extract_method("fleetwindow-events")(extract_window)
    yield "fleetwindow-events"
    extract._STRATEGIES.pop("fleetwindow-events", None)
    query._QUERY_TYPES.pop("fleetwindow", None)


async def completed_runs(client, schedule_id: str, want: int,
                         statuses: tuple[str, ...] = ("completed",)) -> list[dict]:
    for _ in range(240):
        runs = [r for r in (await describe_schedule(client, schedule_id))["recent_runs"] if r["status"] in statuses]
        if len(runs) >= want:
            return runs
        await asyncio.sleep(0.25)
    raise AssertionError(f"schedule {schedule_id} did not complete {want} runs: "
                         f"{(await describe_schedule(client, schedule_id))['recent_runs']}")


async def flows_of(client, task_queue: str, want: int) -> list:
    """The ETLFlow runs on `task_queue`, once visibility lists `want` of them."""
    query = f"TaskQueue='{task_queue}' AND WorkflowType='ETLFlow'"
    for _ in range(40):
        found = [w async for w in client.list_workflows(query)]
        if len(found) >= want:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"{want} flows were not listed on {task_queue}")


async def listed(env, schedule_id: str, present: bool) -> bool:
    for _ in range(40):  # schedules are listed through visibility, which may lag a moment
        result = await run_script("schedule.py", "list", "--json", env=env)
        assert result.returncode == 0, result.stderr
        if (schedule_id in {row["id"] for row in json.loads(result.stdout)}) == present:
            return True
        await asyncio.sleep(0.25)
    return False


async def create_and_trigger(strategy: str, schedule_id: str, since: datetime, env: dict, task_queue: str,
                             monkeypatch) -> None:
    """Create a paused hourly schedule of `strategy` whose first window starts at `since`, and run it once."""
    schedule = load_script("schedule").main
    created = await run_main_in_thread(schedule, [
        "create", schedule_id, "--strategy", strategy, "--interval", "1h", "--since", since.isoformat(),
        "--paused", "--task-queue", task_queue], env, monkeypatch)
    assert created.returncode == 0, created.stderr
    triggered = await run_main_in_thread(schedule, ["trigger", schedule_id], env, monkeypatch)
    assert triggered.returncode == 0, triggered.stderr


async def test_interval_schedule_runs_consecutive_windows(flow_runner, client, db, settings, task_queue,
                                                           window_source, monkeypatch):
    env = script_env(settings, task_queue)
    schedule = load_script("schedule").main
    schedule_id = f"sched-{task_queue}"
    since = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)

    created = await run_main_in_thread(schedule, [
        "create", schedule_id, "--strategy", window_source, "--interval", "1m", "--since", since.isoformat(),
        "--paused", "--task-queue", task_queue], env, monkeypatch)
    assert created.returncode == 0, created.stderr
    assert "every 0:01:00, overlap skip, paused" in created.stdout
    assert "(1 of 1 flows take the window)" in created.stdout

    for n in (1, 2):
        if n == 2:
            # A run's id and scheduled time are whole seconds: a second trigger within the same second
            # would get an empty window (and be skipped), not the next one.
            await asyncio.sleep(1.1)
        triggered = await run_main_in_thread(schedule, ["trigger", schedule_id], env, monkeypatch)
        assert triggered.returncode == 0, triggered.stderr
        runs = await completed_runs(client, schedule_id, n)

    runs.sort(key=lambda r: r["window"][0])  # the server does not promise to list recent runs in order
    (first_start, first_end), (second_start, second_end) = [tuple(r["window"]) for r in runs]
    assert datetime.fromisoformat(first_start) == since
    assert second_start == first_end < second_end
    events = sorted(db.run(lambda cur: (cur.execute(f'SELECT event_id FROM "{db.tables.name}"'),
                                        [r[0] for r in cur.fetchall()])[1]))
    assert events == sorted([f"window|{first_start}|{first_end}", f"window|{second_start}|{second_end}"])

    # No placeholder window is stored in the schedule; each flow and run shows the window it really ran.
    stored = (await client.get_schedule_handle(schedule_id).describe()).schedule.action
    [stored_input] = await client.data_converter.decode(stored.args, [ScheduledFlowInput])
    [child] = stored_input.flows
    assert child.input.args == {} and child.memo["query"] == {} and not child.search_attributes.get("EtlQuery")
    shown = set()
    for flow in await flows_of(client, task_queue, 2):
        desc = await client.get_workflow_handle(flow.id).describe()
        query = (await desc.memo())["query"]
        shown.add((query["since"], query["until"]))
        assert await desc.static_summary() == f"{window_source}: {query}"
        assert desc.typed_search_attributes.get(ETL_QUERY) == f"since={query['since']}, until={query['until']}"
    assert shown == {(first_start, first_end), (second_start, second_end)}
    run_memo = await (await client.get_workflow_handle(runs[0]["workflow_id"]).describe()).memo()
    assert run_memo["window"] == f"{first_start}..{first_end}"
    # The run's new memo command is behind `workflow.patched`: a fresh history replays (old ones: test_replay).
    recorded = await histories(client, runs[1]["workflow_id"])
    assert recorded
    for history in recorded:
        await Replayer(workflows=[ScheduledFlow, FanOutFlow, ETLFlow, StreamingETLFlow]).replay_workflow(history)

    described = await run_main_in_thread(schedule, ["describe", schedule_id], env, monkeypatch)
    assert f"window {first_start} .. {first_end}" in described.stdout
    assert "overlap              skip" in described.stdout

    assert await listed(env, schedule_id, present=True)
    deleted = await run_script("schedule.py", "delete", schedule_id, env=env)
    assert deleted.returncode == 0 and f"deleted schedule {schedule_id}" in deleted.stdout
    assert await listed(env, schedule_id, present=False)
    missing = await run_script("schedule.py", "trigger", schedule_id, env=env)
    assert missing.returncode == 2 and f"no schedule named {schedule_id!r}" in missing.stderr


async def test_a_run_whose_windows_are_all_empty_is_described_as_skipped(
        flow_runner, client, settings, task_queue, window_source, monkeypatch):
    env = script_env(settings, task_queue)
    schedule = load_script("schedule").main
    schedule_id = f"sched-skip-{task_queue}"
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)  # every window is empty

    await create_and_trigger(window_source, schedule_id, tomorrow, env, task_queue, monkeypatch)

    [run] = await completed_runs(client, schedule_id, 1, statuses=("completed", "skipped"))
    assert run["status"] == "skipped" and run["skipped_flows"] == 1 and run["loaded"] == 0
    described = await run_main_in_thread(schedule, ["describe", schedule_id], env, monkeypatch)
    assert f"{run['workflow_id']}  skipped    window {tomorrow.isoformat()} .. {tomorrow.isoformat()}" \
        f"  1 flow skipped (empty window)" in described.stdout
    assert await flows_of_none(client, task_queue)
    await client.get_schedule_handle(schedule_id).delete()


async def test_pause_and_unpause_keep_the_note_given_at_creation(client, settings, task_queue, monkeypatch):
    env = script_env(settings, task_queue)
    schedule = load_script("schedule").main
    schedule_id = f"sched-note-{task_queue}"
    created = await run_main_in_thread(schedule, [
        "create", schedule_id, "--strategy", "synthetic-events", "--interval", "1h", "--paused",
        "--task-queue", task_queue, "--note", "owned by data-platform"], env, monkeypatch)
    assert created.returncode == 0, created.stderr

    for command, why in (("pause", "maintenance"), ("unpause", None)):
        result = await run_main_in_thread(schedule, [command, schedule_id, *(["--note", why] if why else [])],
                                          env, monkeypatch)
        assert result.returncode == 0, result.stderr
        data = json.loads((await run_main_in_thread(schedule, ["describe", schedule_id, "--json"],
                                                    env, monkeypatch)).stdout)
        assert data["note"] == "owned by data-platform"
        assert data["paused"] == (command == "pause")
        if why:
            assert data["state_note"] == "owned by data-platform; paused: maintenance"
    await client.get_schedule_handle(schedule_id).delete()


async def flows_of_none(client, task_queue: str) -> bool:
    return not [w async for w in client.list_workflows(f"TaskQueue='{task_queue}' AND WorkflowType='ETLFlow'")]


async def test_schedule_create_refuses_what_would_break_the_window_chain(settings, task_queue, monkeypatch):
    env = script_env(settings, task_queue)
    schedule = load_script("schedule").main
    base = ["create", "bad", "--strategy", "synthetic-events", "--interval", "1h"]

    allow_all = await run_main_in_thread(schedule, base + ["--overlap", "allow_all"], env, monkeypatch)
    assert allow_all.returncode == 2 and "--overlap='allow_all' is not valid" in allow_all.stderr

    interval = await run_main_in_thread(schedule, ["create", "bad", "--strategy", "synthetic-events",
                                                   "--interval", "soon"], env, monkeypatch)
    assert interval.returncode == 2 and "--interval='soon' is not valid: expected a duration" in interval.stderr

    window = await run_main_in_thread(schedule, base + ["--window-args", "count,seed"], env, monkeypatch)
    assert window.returncode == 2 and "'count' is not one" in window.stderr


async def test_a_failed_run_is_described_with_the_window_it_covered(
        flow_runner, client, settings, task_queue, broken_strategy, monkeypatch):
    env = script_env(settings, task_queue)
    schedule = load_script("schedule").main
    schedule_id = f"sched-fail-{task_queue}"
    since = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)

    await create_and_trigger(broken_strategy, schedule_id, since, env, task_queue, monkeypatch)

    [run] = await completed_runs(client, schedule_id, 1, statuses=("failed",))
    start, end = run["window"]
    assert datetime.fromisoformat(start) == since < datetime.fromisoformat(end)
    described = await run_main_in_thread(schedule, ["describe", schedule_id], env, monkeypatch)
    line = next(l for l in described.stdout.splitlines() if run["workflow_id"] in l)
    assert line.startswith(f"  {run['workflow_id']}  failed     window {start} .. {end}  "), described.stdout
    await client.get_schedule_handle(schedule_id).delete()
