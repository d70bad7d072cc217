"""Record the histories the replay tests check workflow code against.

    python -m tests.record_histories

Runs representative flows on a private stack and writes every run's history to
tests/histories/. Re-record only on purpose: a workflow change that cannot replay these
histories would break flows already running in users' clusters.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from etl.core.settings import settings_from_env
from etl.devstack.servers import private_stack
from etl.launch.fanout import child_of
from etl.launch.plan import plan_flow
from etl.runtime.client import connect
from etl.runtime.history import histories
from etl.store.db import Database
from etl.workflows.fleet_io import FanOutInput, ScheduledFlowInput
from etl.workflows.flow_io import ETLFlowInput
from tests.flows import FlowRunner

HERE = Path(__file__).resolve().parent / "histories"

#: (name, workflow, input)
CASES = [
    ("batch", "ETLFlow", ETLFlowInput("synthetic", "synthetic-events",
                                      {"count": 3000, "seed": 1, "bad_rate": 0.05, "page_size": 250}, batch_size=1000)),
    ("batch-continue-as-new", "ETLFlow", ETLFlowInput("synthetic", "synthetic-events",
                                                      {"count": 4000, "seed": 2, "page_size": 250},
                                                      batch_size=500, history_budget=40)),
    ("streaming", "StreamingETLFlow", ETLFlowInput("synthetic", "synthetic-events",
                                                   {"count": 4000, "seed": 3, "bad_rate": 0.05, "page_size": 250},
                                                   chunk_count=3, pages_per_call=3)),
    ("streaming-continue-as-new", "StreamingETLFlow", ETLFlowInput(
        "synthetic", "synthetic-events", {"count": 4000, "seed": 4, "page_size": 100}, chunk_count=4,
        pages_per_call=4, history_budget=40)),
    ("batch-bad-query", "ETLFlow", ETLFlowInput("synthetic", "synthetic-events", {"count": -1})),
    ("fanout", "FanOutFlow", lambda settings: FanOutInput(flows=_children(settings, 3), concurrency=2)),
    ("scheduled", "ScheduledFlow", lambda settings: ScheduledFlowInput(
        flows=_children(settings, 2), since="2024-01-01T00:00:00+00:00", concurrency=2)),
]


def _children(settings, count: int) -> list:
    plans = [plan_flow(settings, "synthetic-events", {"count": 500, "seed": 100 + n}, task_queue="record")
             for n in range(count)]
    return [child_of(plan) for plan in plans]


async def record(root: Path) -> None:
    with private_stack(root) as (_, _, env):
        try:
            await _record(settings_from_env({**env, "EVENTS_TABLE": "recorded"}))
        finally:
            Database.close_all()


async def _record(settings) -> None:
    client = await connect(settings)
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.json"):
        old.unlink()
    async with FlowRunner(client, settings, "record") as _:
        for name, workflow, inp in CASES:
            wid = name  # the replay test gives each history this id back (child ids derive from it)
            if callable(inp):
                inp = inp(settings)
            try:
                await client.execute_workflow(workflow, inp, id=wid, task_queue="record")
            except Exception as exc:  # noqa: BLE001 - failing flows are recorded too
                print(f"{name}: failed as intended ({type(exc).__name__})")
            for n, history in enumerate(await histories(client, wid)):
                (HERE / f"{name}-run{n}.json").write_text(history.to_json())
                print(f"{name}: run {n}: {len(history.events)} events")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="etl-record-"))
    try:
        asyncio.run(record(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
