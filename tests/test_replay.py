"""Workflow code replayed against recorded histories: a non-deterministic change fails here
before it can break flows already running in a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from etl.runtime.history import histories
from tests.record_histories import STAMP, workflow_code_digest
from etl.workflows.batch import ETLFlow
from etl.workflows.fanout import FanOutFlow
from etl.workflows.scheduled import ScheduledFlow
from etl.workflows.streaming import StreamingETLFlow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def all_workflows() -> list:
    """Every workflow type the project defines, so each recorded history finds its code."""
    return [ETLFlow, StreamingETLFlow, FanOutFlow, ScheduledFlow]


def test_histories_were_recorded_with_todays_workflow_code():
    """Pinned flows are recorded again with every change of workflow code (a change that their
    old histories happen to replay would still leave the suite testing yesterday's shapes)."""
    recorded = STAMP.read_text().strip() if STAMP.exists() else "(none)"
    assert recorded == workflow_code_digest(), (
        "etl/workflows changed since tests/histories were recorded: run `python -m tests.record_histories` "
        "(keep the auto-upgrade workflows' older histories: they must still replay)")


def test_every_workflow_type_has_recorded_histories():
    kinds = {path.name.split("-")[0] for path in HISTORIES}
    assert {"batch", "streaming", "fanout", "scheduled"} <= kinds


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    workflow_id = path.stem.rsplit("-run", 1)[0]  # as recorded by tests/record_histories.py
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    await Replayer(workflows=all_workflows()).replay_workflow(history)


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_fresh_runs_replay(flow_runner, client, streaming):
    handle = await flow_runner.start("synthetic-events", {"count": 3000, "seed": 41, "page_size": 200},
                                     streaming=streaming, batch_size=1000, chunk_count=3, pages_per_call=2,
                                     history_budget=30)
    await handle.result()
    runs = await histories(client, handle.id)
    assert len(runs) > 1
    replayer = Replayer(workflows=all_workflows())
    for history in runs:
        await replayer.replay_workflow(history)
