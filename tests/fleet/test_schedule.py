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

from etl.core.query import Query
from etl.launch.schedule_view import describe_schedule
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


async def completed_runs(client, schedule_id: str, want: int) -> list[dict]:
    for _ in range(240):
        runs = [r for r in (await describe_schedule(client, schedule_id))["recent_runs"] if r["status"] == "completed"]
        if len(runs) >= want:
            return runs
        await asyncio.sleep(0.25)
    raise AssertionError(f"schedule {schedule_id} did not complete {want} runs")


async def listed(env, schedule_id: str, present: bool) -> bool:
    for _ in range(40):  # schedules are listed through visibility, which may lag a moment
        result = await run_script("schedule.py", "list", "--json", env=env)
        assert result.returncode == 0, result.stderr
        if (schedule_id in {row["id"] for row in json.loads(result.stdout)}) == present:
            return True
        await asyncio.sleep(0.25)
    return False


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
        triggered = await run_main_in_thread(schedule, ["trigger", schedule_id], env, monkeypatch)
        assert triggered.returncode == 0, triggered.stderr
        runs = await completed_runs(client, schedule_id, n)

    (first_start, first_end), (second_start, second_end) = [tuple(r["window"]) for r in runs]
    assert datetime.fromisoformat(first_start) == since
    assert second_start == first_end < second_end
    events = sorted(db.run(lambda cur: (cur.execute(f'SELECT event_id FROM "{db.tables.name}"'),
                                        [r[0] for r in cur.fetchall()])[1]))
    assert events == sorted([f"window|{first_start}|{first_end}", f"window|{second_start}|{second_end}"])

    described = await run_main_in_thread(schedule, ["describe", schedule_id], env, monkeypatch)
    assert f"window {first_start} .. {first_end}" in described.stdout
    assert "overlap              skip" in described.stdout

    assert await listed(env, schedule_id, present=True)
    deleted = await run_script("schedule.py", "delete", schedule_id, env=env)
    assert deleted.returncode == 0 and f"deleted schedule {schedule_id}" in deleted.stdout
    assert await listed(env, schedule_id, present=False)
    missing = await run_script("schedule.py", "trigger", schedule_id, env=env)
    assert missing.returncode == 2 and f"no schedule named {schedule_id!r}" in missing.stderr


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
