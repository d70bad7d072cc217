"""Worker Versioning on the real dev server: a deploy never breaks a running flow.

Version 1 is the project's own code (`build_worker`). Version 2 is a test-only variant
registered under the same names: its workflows start with a timer (a change that cannot
replay a version-1 history) and its activities use another staging format (batch keys under
`v2/`), refusing a version-1 batch with a `VersionSkew` error, as a stale worker once failed
a newer flow's batch with `StagedBatchMissing`.

Both versions run in this process as two workers on one task queue, each with its own
identity, so each flow's history says which version ran every workflow task and activity.

`ETL_TEST_WITHOUT_VERSIONING=1` runs the same deploy without a new version: version 2's code
joins as more workers of version 1, as every deploy did before Worker Versioning (workers
of old and new code polling one queue while they are restarted one by one). Test (a) then
fails, which shows it tests something.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.common import WorkerDeploymentVersion
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from etl.activities.batch import ETLActivities
from etl.activities.streaming import StreamingActivities
from etl.launch.plan import plan_flow, start_flow
from etl.runtime import versioning
from etl.runtime.worker import build_worker
from etl.workflows.flow_io import (
    BatchRef,
    ChunkInput,
    ChunkState,
    ExtractBatchInput,
    ExtractBatchResult,
    LoadResult,
    SplitInput,
    SplitResult,
    TransformResult,
)
from tests.v2_workflows import V2_PREFIX, ETLFlowV2, StreamingETLFlowV2

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERSIONED = os.environ.get("ETL_TEST_WITHOUT_VERSIONING") != "1"


# -- version 2: an incompatible workflow change and a new staging format ------------------------

class V2Activities:
    """Version 2's activities: version 1's, behind a staging-format check that counts every refusal."""

    def __init__(self, batch: ETLActivities, streaming: StreamingActivities):
        self.batch, self.streaming = batch, streaming
        self.skew: list[str] = []

    def _check(self, key: str) -> None:
        if not key.startswith(V2_PREFIX):
            self.skew.append(key)
            raise ApplicationError(f"{key}: staged by version 1; version 2 reads only {V2_PREFIX} batches",
                                   type="VersionSkew")

    @activity.defn(name="extract_batch")
    def extract_batch(self, inp: ExtractBatchInput) -> ExtractBatchResult:
        self._check(inp.flow_key)
        return self.batch.extract_batch(inp)

    @activity.defn(name="transform_batch")
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        self._check(ref.batch_key)
        return self.batch.transform_batch(ref)

    @activity.defn(name="load_batch")
    def load_batch(self, ref: BatchRef) -> LoadResult:
        self._check(ref.batch_key)
        return self.batch.load_batch(ref)

    @activity.defn(name="finish_flow")
    def finish_flow(self, flow_key: str) -> None:
        self._check(flow_key)
        return self.batch.finish_flow(flow_key)

    @activity.defn(name="split_query")
    def split_query(self, inp: SplitInput) -> SplitResult:
        return self.streaming.split_query(inp)

    @activity.defn(name="process_chunk")
    def process_chunk(self, inp: ChunkInput) -> ChunkState:
        self._check(inp.flow_key)
        return self.streaming.process_chunk(inp)

    def all(self) -> list:
        found = [self.extract_batch, self.transform_batch, self.load_batch, self.finish_flow,
                 self.split_query, self.process_chunk]
        if hasattr(self.streaming, "finish_stream"):
            found.append(self.finish_stream)
        return found

    @activity.defn(name="finish_stream")
    def finish_stream(self, flow_key: str) -> None:
        self._check(flow_key)
        return self.streaming.finish_stream(flow_key)


def v2_worker(client, settings, task_queue, version) -> tuple[Worker, V2Activities]:
    from etl.store.db import Database

    db = Database.get(settings)
    acts = V2Activities(ETLActivities(settings, db), StreamingActivities(settings, db))
    worker = Worker(client, task_queue=task_queue, workflows=[ETLFlowV2, StreamingETLFlowV2],
                    activities=acts.all(), activity_executor=ThreadPoolExecutor(8), identity="v2-worker",
                    deployment_config=versioning.deployment_config(version))
    return worker, acts


# -- holding version 1's flows mid-run while version 2 is deployed -------------------------------

class Gate(Interceptor):
    """Lets each held flow run `allowed` activities, then holds its next ones (heartbeating) until
    `open` is set: the flows are mid-run, deterministically, while the deploy happens."""

    def __init__(self, allowed: int = 2):
        self.allowed = allowed
        self.held_ids: set[str] = set()
        self.waiting: set[str] = set()
        self.open = threading.Event()
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        gate = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                fn = input.fn

                def held(*args):
                    wid = activity.info().workflow_id
                    with gate._lock:
                        gate._counts[wid] += 1
                        hold = wid in gate.held_ids and gate._counts[wid] > gate.allowed
                        if hold:
                            gate.waiting.add(wid)
                    while hold and not gate.open.wait(1):
                        activity.heartbeat()
                    return fn(*args)

                input.fn = held
                return await super().execute_activity(input)

        return Inbound(next)

    async def wait_holding(self, ids: set[str]) -> None:
        while not ids <= self.waiting:
            await asyncio.sleep(0.1)


# -- helpers -------------------------------------------------------------------------------------

async def start(client, settings, task_queue, wid: str, seed: int, streaming: bool, count: int = 2000):
    plan = plan_flow(settings, "synthetic-events", {"count": count, "seed": seed, "page_size": 200},
                     streaming=streaming, task_queue=task_queue, workflow_id=wid,
                     batch_size=400, chunk_count=3, pages_per_call=2)
    handle, _ = await start_flow(client, plan)
    return handle


async def finished(handle, guard_s: float = 120):
    """The flow's result. The guard is no timing claim (a flow here takes seconds): without
    versioning a flow can wait minutes in Temporal's backoff between failed workflow tasks, and
    the test should then fail with the flow's history rather than hang."""
    try:
        return await asyncio.wait_for(handle.result(), guard_s)
    except TimeoutError:
        seen = await who_ran(handle)
        raise AssertionError(f"{handle.id} did not finish within {guard_s:.0f}s: {seen}") from None


async def version_of(handle) -> str:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id


async def who_ran(handle) -> dict:
    """Identities that ran the flow's workflow tasks and activities, failures, and retried attempts."""
    seen = {"workflow": set(), "activity": set(), "workflow_task_failed": 0, "activity_failed": 0, "retries": 0}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            seen["workflow"].add(event.workflow_task_started_event_attributes.identity)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            seen["activity"].add(attrs.identity)
            seen["retries"] += attrs.attempt > 1
        elif event.event_type in (EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                                  EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
            seen["workflow_task_failed"] += 1
        elif event.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                                  EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            seen["activity_failed"] += 1
    return seen


async def _run(worker: Worker) -> asyncio.Task:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)
    return task


async def _stop(*pairs) -> None:
    for worker, task in pairs:
        await worker.shutdown()
        await task


def versions(deployment: str) -> tuple[WorkerDeploymentVersion, WorkerDeploymentVersion]:
    return WorkerDeploymentVersion(deployment, "1.0.0-v1"), WorkerDeploymentVersion(deployment, "1.0.0-v2")


# -- (a) a deploy while flows run ----------------------------------------------------------------

async def test_flows_started_on_v1_finish_on_v1_while_v2_takes_new_flows(client, settings, db, task_queue):
    deployment = versioning.Deployment(client, f"dep-{uuid.uuid4().hex[:8]}")
    v1, v2 = versions(deployment.name)
    gate = Gate()
    w1 = build_worker(client, settings, task_queue=task_queue, concurrency=8, kinds=("batch", "streaming"),
                      identity="v1-worker", version=v1, interceptors=[gate])
    t1 = await _run(w1)
    await deployment.wait_for_pollers(v1.build_id, [task_queue])
    await deployment.set_current(v1.build_id)

    old = {"batch": f"old-batch-{uuid.uuid4().hex[:6]}", "streaming": f"old-stream-{uuid.uuid4().hex[:6]}"}
    gate.held_ids |= set(old.values())
    a = await start(client, settings, task_queue, old["batch"], seed=1, streaming=False)
    b = await start(client, settings, task_queue, old["streaming"], seed=2, streaming=True)
    await gate.wait_holding(set(old.values()))  # both are mid-run, their next activities held

    # Deploy version 2: its workers poll, then it becomes current.
    # A client of its own, as another process would have (the SDK refuses two workers of one
    # build id on one queue and one client).
    from etl.runtime.client import connect

    w2, v2_acts = v2_worker(await connect(settings), settings, task_queue, v2 if VERSIONED else v1)
    t2 = await _run(w2)
    try:
        if VERSIONED:
            await deployment.wait_for_pollers(v2.build_id, [task_queue])
            await deployment.set_current(v2.build_id)
            assert (await deployment.routing())[0] == v2.build_id
        c = await start(client, settings, task_queue, f"new-batch-{uuid.uuid4().hex[:6]}", seed=3, streaming=False)
        d = await start(client, settings, task_queue, f"new-stream-{uuid.uuid4().hex[:6]}", seed=4, streaming=True)
        new_summaries = [await finished(c), await finished(d)]
        gate.open.set()  # version 1's flows go on, after version 2 took the new ones
        old_summaries = [await finished(a), await finished(b)]
    finally:
        gate.open.set()
        await _stop((w2, t2), (w1, t1))

    assert v2_acts.skew == [], "version 2's workers were handed version 1's batches"
    for handle in (a, b, c, d):
        seen = await who_ran(handle)
        expected = "v1-worker" if handle in (a, b) else "v2-worker"
        assert seen["workflow"] == {expected}, (handle.id, seen)
        assert seen["activity"] == {expected}, (handle.id, seen)
        assert (seen["workflow_task_failed"], seen["activity_failed"], seen["retries"]) == (0, 0, 0), (handle.id, seen)
    if VERSIONED:
        assert [await version_of(h) for h in (a, b, c, d)] == [v1.build_id, v1.build_id, v2.build_id, v2.build_id]
    # Every event once: four flows of 2,000 events each, disjoint seeds.
    assert [s.loaded for s in old_summaries + new_summaries] == [2000] * 4
    assert db.scalar(f"SELECT count(*) FROM {settings.events_table}") == 8000
    assert db.scalar(f"SELECT count(DISTINCT event_id) FROM {settings.events_table}") == 8000


# -- (b) a ramp ----------------------------------------------------------------------------------

@pytest.mark.skipif(not VERSIONED, reason="ramping is a versioning feature")
async def test_a_ramp_of_half_sends_about_half_of_new_flows_to_the_new_version(client, settings, db, task_queue):
    deployment = versioning.Deployment(client, f"dep-{uuid.uuid4().hex[:8]}")
    v1, v2 = versions(deployment.name)
    w1 = build_worker(client, settings, task_queue=task_queue, concurrency=8, kinds=("batch",),
                      identity="v1-worker", version=v1)
    w2, _ = v2_worker(client, settings, task_queue, v2)
    t1, t2 = await _run(w1), await _run(w2)
    try:
        await deployment.wait_for_pollers(v1.build_id, [task_queue])
        await deployment.set_current(v1.build_id)
        await deployment.wait_for_pollers(v2.build_id, [task_queue])
        await deployment.set_ramp(v2.build_id, 50)
        assert await deployment.routing() == (v1.build_id, v2.build_id, 50.0)
        # Fixed ids: the server picks a ramped flow by a hash of its id, so the split is the same every run.
        handles = [await start(client, settings, task_queue, f"ramp-{n}", seed=100 + n, streaming=False, count=20)
                   for n in range(20)]
        for handle in handles:
            await handle.result()
        split = Counter([await version_of(h) for h in handles])
    finally:
        await _stop((w2, t2), (w1, t1))
    assert set(split) == {v1.build_id, v2.build_id}
    assert 6 <= split[v2.build_id] <= 14, split


# -- (c) the old version drains, and its workers learn they may stop -----------------------------

@pytest.mark.skipif(not VERSIONED, reason="draining is a versioning feature")
async def test_after_v1_drains_its_workers_are_told_they_may_stop(client, settings, db, task_queue):
    deployment = versioning.Deployment(client, f"dep-{uuid.uuid4().hex[:8]}")
    v1, v2 = versions(deployment.name)
    gate = Gate(allowed=1)
    w1 = build_worker(client, settings, task_queue=task_queue, concurrency=4, kinds=("batch",),
                      identity="v1-worker", version=v1, interceptors=[gate])
    w2, _ = v2_worker(client, settings, task_queue, v2)
    t1, t2 = await _run(w1), await _run(w2)
    watch = versioning.DrainWatch(client, v1, poll_s=0.5)
    watching = asyncio.create_task(watch.run())
    reports: list[versioning.VersionState] = []
    try:
        await deployment.wait_for_pollers(v1.build_id, [task_queue])
        await deployment.set_current(v1.build_id)
        wid = f"draining-{uuid.uuid4().hex[:6]}"
        gate.held_ids.add(wid)
        handle = await start(client, settings, task_queue, wid, seed=7, streaming=False, count=500)
        await gate.wait_holding({wid})
        await deployment.wait_for_pollers(v2.build_id, [task_queue])
        await deployment.set_current(v2.build_id)
        state = await deployment.describe(v1.build_id)
        assert (state.status, state.running_pinned) == ("draining", 1)
        assert not watch.may_stop.is_set()
        gate.open.set()
        await handle.result()
        drained = await deployment.wait_drained(v1.build_id, poll_s=0.5, report=reports.append)
        await asyncio.wait_for(watch.may_stop.wait(), 60)
    finally:
        gate.open.set()
        watching.cancel()
        await _stop((w2, t2), (w1, t1))
    assert drained.drained and drained.running_pinned == 0
    assert "drained: no flow needs this version, its workers may stop" in watch.lines()[0]
    assert reports[-1].running_pinned == 0


async def test_a_first_worker_keeps_trying_to_make_its_version_current(client, settings, db, task_queue,
                                                                       monkeypatch, caplog):
    """A server too slow to answer the first tries (a deployment's pollers not yet seen) must not
    leave a fleet's first worker polling for tasks that never come: it tries again, says so in its
    log, and its flows run once the version is current."""
    from etl.runtime import worker as worker_module

    real, failures = versioning.bootstrap_current, []

    async def slow_server(client_, version, timeout_s=60.0):
        if len(failures) < 2:
            failures.append(version)
            raise versioning.DeployError("no workers polling any task queue after 60s (injected)")
        return await real(client_, version, timeout_s)

    monkeypatch.setattr(versioning, "bootstrap_current", slow_server)
    monkeypatch.setattr(worker_module.FleetWorker._first_version, "__defaults__", (0.2, 0.5))
    worker = build_worker(client, settings, task_queue=task_queue, concurrency=4, kinds=("batch",))
    running = asyncio.create_task(worker.run())
    try:
        plan = plan_flow(settings, "synthetic-events", {"count": 300, "seed": 3, "page_size": 100},
                         task_queue=task_queue, workflow_id=f"first-version-{task_queue}", batch_size=100)
        handle, _ = await start_flow(client, plan)
        summary = await asyncio.wait_for(handle.result(), 120)
    finally:
        await worker.shutdown()
        await running
    assert len(failures) == 2
    assert summary.extracted == 300 and summary.loaded == db.count_events() > 0
    assert sum("could not make" in r.getMessage() and "trying again" in r.getMessage()
               for r in caplog.records) == 2
