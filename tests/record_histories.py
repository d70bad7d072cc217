"""Record the histories the replay tests check workflow code against.

    python -m tests.record_histories [NAME ...]

Runs representative flows on a private stack and writes every run's history to
tests/histories/: with no names, every case of the pinned flows (ETLFlow, StreamingETLFlow);
with names, those cases only (e.g. `fanout`). Pinned flows never replay another build's
history, so theirs are simply recorded again with every change of their code. The
auto-upgrade workflows (FanOutFlow, ScheduledFlow) must replay the histories of earlier
builds: record theirs again only on purpose, and keep what older builds recorded.

`batch-worker-killed` is taken from a worker process SIGKILLed in the middle of a batch, the
next worker finishing the flow across continue-as-new: the shape of a history that only a kill
makes (workflow and activity tasks timed out, then retried elsewhere).

Beside them, `RECORDED_WITH` holds a digest of the pinned flows' code they were recorded with
(`workflow_code_digest`); the replay tests fail when that code changed and they were not
recorded again.

The `versioned-*` cases run on a worker that is a version of a Worker Deployment, as every
fleet worker is, so their histories carry the versioning behaviour each workflow declares
(a workflow task completed by a versioned worker records its deployment version and behaviour).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
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
STAMP = HERE / "RECORDED_WITH"
WORKFLOW_CODE = Path(__file__).resolve().parent.parent / "etl" / "workflows"
#: The modules of the pinned flows' workflow code (what their replay runs).
PINNED_CODE = ("batch.py", "streaming.py", "common.py", "flow_io.py", "activity_contracts.py")
#: Cases of the auto-upgrade workflows: recorded only when named.
AUTO_UPGRADE = {"fanout", "scheduled", "versioned-fanout"}


def workflow_code_digest() -> str:
    """A digest of the pinned flows' workflow code, by file name and content."""
    digest = hashlib.sha256()
    for name in PINNED_CODE:
        digest.update(name.encode() + b"\0" + (WORKFLOW_CODE / name).read_bytes() + b"\0")
    return digest.hexdigest()

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


#: Run on a versioned worker (see the docstring): (name, workflow, input).
VERSIONED_CASES = [
    ("versioned-batch", "ETLFlow", ETLFlowInput("synthetic", "synthetic-events",
                                                {"count": 2000, "seed": 11, "bad_rate": 0.05, "page_size": 250},
                                                batch_size=500, history_budget=40)),
    ("versioned-streaming", "StreamingETLFlow", ETLFlowInput(
        "synthetic", "synthetic-events", {"count": 3000, "seed": 12, "page_size": 200}, chunk_count=3,
        pages_per_call=2, history_budget=40)),
    ("versioned-fanout", "FanOutFlow", lambda settings: FanOutInput(
        flows=_children(settings, 2, "record-versioned"), concurrency=2)),
]


def _children(settings, count: int, task_queue: str = "record") -> list:
    plans = [plan_flow(settings, "synthetic-events", {"count": 500, "seed": 100 + n}, task_queue=task_queue)
             for n in range(count)]
    return [child_of(plan) for plan in plans]


async def record(root: Path, only: set[str] | None = None) -> None:
    with private_stack(root) as (_, _, env):
        try:
            await _record(settings_from_env({**env, "EVENTS_TABLE": "recorded"}), only)
        finally:
            Database.close_all()


async def _record(settings, only: set[str] | None = None) -> None:
    client = await connect(settings)
    HERE.mkdir(exist_ok=True)
    if only is None:
        only = {case[0] for case in CASES + VERSIONED_CASES if case[0] not in AUTO_UPGRADE} | {"batch-worker-killed"}
    for old in HERE.glob("*.json"):
        if old.stem.rsplit("-run", 1)[0] in only:
            old.unlink()
    plain = [case for case in CASES if case[0] in only]
    versioned = [case for case in VERSIONED_CASES if case[0] in only]
    async with FlowRunner(client, settings, "record") as _:
        await _run_cases(client, settings, plain, "record")
    if versioned:
        await _record_versioned(client, settings, versioned)
    if "batch-worker-killed" in only:
        await _record_worker_killed(client, settings)
    if only & {case[0] for case in CASES + VERSIONED_CASES if case[0] not in AUTO_UPGRADE}:
        STAMP.write_text(workflow_code_digest() + "\n")


async def _record_worker_killed(client, settings) -> None:
    """ETLFlow on a worker process killed mid-batch; a second worker process finishes it."""
    from tests.workers import WorkerProcess

    name, queue = "batch-worker-killed", "record-killed"
    inp = ETLFlowInput("synthetic", "synthetic-events", {"count": 3000, "seed": 5, "page_size": 100,
                                                         "page_pause_s": 0.05}, batch_size=1000, history_budget=40)
    worker = WorkerProcess(settings, queue, concurrency=2)
    try:
        handle = await client.start_workflow("ETLFlow", inp, id=name, task_queue=queue)
        while True:  # until the first batch is partly extracted
            await asyncio.sleep(0.2)
            progress = await handle.query("progress")
            if progress["extracted"] >= 300:
                break
    finally:
        worker.kill()
    worker = WorkerProcess(settings, queue, concurrency=2)
    try:
        await handle.result()
    finally:
        worker.terminate()
    for n, history in enumerate(await histories(client, name)):
        (HERE / f"{name}-run{n}.json").write_text(history.to_json())
        print(f"{name}: run {n}: {len(history.events)} events")


async def _record_versioned(client, settings, cases) -> None:
    from temporalio.common import WorkerDeploymentVersion

    from etl.runtime.versioning import Deployment
    from etl.runtime.worker import build_worker

    version = WorkerDeploymentVersion("record", "recorded")
    worker = build_worker(client, settings, task_queue="record-versioned", concurrency=4,
                          kinds=("batch", "streaming"), version=version)
    async with worker:
        deployment = Deployment(client, version.deployment_name)
        await deployment.wait_for_pollers(version.build_id, ["record-versioned"])
        await deployment.set_current(version.build_id)
        await _run_cases(client, settings, cases, "record-versioned")


async def _run_cases(client, settings, cases, task_queue: str) -> None:
    for name, workflow, inp in cases:
        wid = name  # the replay test gives each history this id back (child ids derive from it)
        if callable(inp):
            inp = inp(settings)
        try:
            await client.execute_workflow(workflow, inp, id=wid, task_queue=task_queue)
        except Exception as exc:  # noqa: BLE001 - failing flows are recorded too
            print(f"{name}: failed as intended ({type(exc).__name__})")
        for n, history in enumerate(await histories(client, wid)):
            (HERE / f"{name}-run{n}.json").write_text(history.to_json())
            print(f"{name}: run {n}: {len(history.events)} events")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="etl-record-"))
    try:
        asyncio.run(record(root, set(sys.argv[1:]) or None))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
