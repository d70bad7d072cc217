"""`scripts/deploy.py` driving a dev-stack fleet of worker processes, as an operator would: a
rollout after one worker of the old build died (its kinds now uneven), a ramp, a rollback with one
command, and the bad build drained to stopped workers, with flows running throughout and every
event counted once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import psutil
import pytest

from etl.core.settings import load_settings
from etl.devstack.local import DevStack
from etl.devstack.version_workers import fleet_by_version, start_version
from etl.launch.plan import plan_flow, start_flow
from etl.runtime.versioning import Deployment
from tests.workers import ROOT, settings_env

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD, NEW = "1.0.0-good", "1.0.0-bad"


def deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/deploy.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


async def run_deploy(*args: str) -> str:
    done = await asyncio.to_thread(deploy, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def version_of(handle) -> str:
    """The build a flow runs on, once its first workflow task has run (none before)."""
    for _ in range(600):
        info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
        if info.deployment_version.build_id:
            return info.deployment_version.build_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"{handle.id} has run no workflow task")


def logs(stack: DevStack) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(stack.workers_dir.glob("*.log")))


async def test_rollout_with_a_dead_worker_ramp_rollback_and_drain(client, settings, db, tmp_path, monkeypatch):
    deployment_name = f"fleet-{uuid.uuid4().hex[:8]}"
    queues = {"ETL_TASK_QUEUE": f"tq-b-{uuid.uuid4().hex[:8]}", "ETL_STREAMING_TASK_QUEUE": f"tq-s-{uuid.uuid4().hex[:8]}"}
    for name, value in {**settings_env(settings), **queues, "ETL_STATE_DIR": str(tmp_path / "state"),
                        "WORKER_DEPLOYMENT_NAME": deployment_name, "WORKER_CONCURRENCY": "2"}.items():
        monkeypatch.setenv(name, value)  # for deploy.py and the workers the dev stack starts
    monkeypatch.delenv("WORKER_BUILD_ID", raising=False)
    fleet_settings = load_settings()
    stack = DevStack(fleet_settings)
    deployment = Deployment(client, deployment_name)
    handles, expected = [], 0

    async def launch(prefix: str, n: int, streaming: bool, count: int = 300, pause: float = 0.0):
        nonlocal expected
        started = []
        for i in range(n):
            plan = plan_flow(fleet_settings, "synthetic-events",
                             {"count": count, "seed": len(handles) + 1, "page_size": 100, "page_pause_s": pause},
                             streaming=streaming, workflow_id=f"{deployment_name}-{prefix}-{i}",
                             batch_size=100, chunk_count=2)
            handle, _ = await start_flow(client, plan)
            handles.append(handle)
            started.append(handle)
            expected += count
        return started

    try:
        start_version(stack, 2, deployment_name, OLD)
        await deployment.wait_for_pollers(OLD, list(queues.values()), timeout_s=120)
        for _ in range(240):  # the fleet's first worker makes its version current
            if (await deployment.routing())[0] == OLD:
                break
            await asyncio.sleep(0.5)
        old_fleet = fleet_by_version(stack)[OLD]
        os.kill(old_fleet["etl_worker"][0], signal.SIGKILL)  # one batch worker dies: 1 batch, 2 streaming
        psutil.Process(old_fleet["etl_worker"][0]).wait(30)
        before = await launch("before", 1, False, pause=0.2) + await launch("before-s", 1, True, pause=0.2)

        out = await run_deploy("rollout", "--build-id", NEW, "--workers", "1", "--ramp", "50")
        assert f"1. {NEW}: started 1 batch and 1 streaming workers; 1 and 1 run" in out, out
        new_fleet = fleet_by_version(stack)[NEW]
        assert {kind: len(pids) for kind, pids in new_fleet.items()} == {"etl_worker": 1, "streaming_worker": 1}
        assert await deployment.routing() == (OLD, NEW, 50.0)

        ramped = await launch("ramp", 8, False, count=200, pause=0.3)
        on = {h.id: await version_of(h) for h in ramped}
        assert set(on.values()) == {OLD, NEW}, on  # fixed ids: the server's split is the same every run

        out = await run_deploy("rollback")
        assert f"{OLD} is current and nothing ramps" in out and f"{NEW} takes no new flows" in out, out
        status = json.loads(await run_deploy("status", "--json"))
        assert (status["current"], status["ramping"]) == (OLD, None), status
        after = await launch("after", 4, False, count=200)
        assert {await version_of(h) for h in after} == {OLD}

        out = await run_deploy("drain", NEW, "--stop-local-workers")
        assert f"stopped 2 local workers of {NEW}" in out, out
        assert NEW not in fleet_by_version(stack)
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pids in new_fleet.values() for pid in pids)
        summaries = [await asyncio.wait_for(h.result(), 300) for h in handles]
    except BaseException:
        print(logs(stack))
        raise
    finally:
        await asyncio.to_thread(stack.stop_workers, 75)
    assert sum(s.loaded for s in summaries) == expected
    assert db.count_events() == expected
    assert db.scalar(f"SELECT count(DISTINCT event_id) FROM {settings.events_table}") == expected
    assert {await version_of(h) for h in before} == {OLD}
