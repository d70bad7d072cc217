"""The fault plan: drawn from the seed, one fault every 20-90 s, each kind in turn at first so a
short soak meets as many kinds as it has room for, then at random. `inject` carries one out;
long ones (a drain, a deploy, a starved worker, an outage) run in the background and report when done.

    worker_kill     a worker gets SIGKILL (its activities move on after their heartbeat timeout)
    worker_drain    a worker gets SIGTERM: it finishes or hands back what it runs, then exits
    postgres        PostgreSQL stops (fast or immediate: a crash) and starts again after 1-6 s
    temporal        the Temporal dev server stops (SIGTERM or SIGKILL) and starts again after 1-6 s
    deploy          `scripts/deploy.py rollout` of a new WORKER_BUILD_ID while flows run; the old
                    build drains and its workers stop
    db_refuses      the events database refuses new connections for 5-45 s (its open ones end), past
                    DB_RETRY_S (30 s) at times: then the activity's own retries carry on
    memory_starved  a streaming worker with MEMORY_LIMIT_MIB 80-110 (about its own idle RSS) joins for
                    40-80 s: it takes chunks only while under it (backpressure)
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from dataclasses import dataclass

import psutil

from scripts.soaking.commands import run_command
from scripts.soaking.stack import SoakStack
from scripts.soaking.timeline import Timeline

KINDS = ("worker_kill", "postgres", "deploy", "worker_drain", "temporal", "db_refuses", "memory_starved")


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    seconds: float
    """How long the outage lasts (postgres, temporal, db_refuses, memory_starved)."""
    choice: float
    """A number in [0, 1) that picks the worker, the stop mode, the memory limit."""


def fault_plan(seed: int, active_s: float, first_s: float = 20.0) -> list[Fault]:
    """The faults of a soak whose launches and faults last `active_s` seconds."""
    rng = random.Random(f"soak-faults-{seed}")
    kinds = list(KINDS)
    rng.shuffle(kinds)
    plan, at = [], first_s + rng.uniform(0, 10)
    while at < active_s - 15:
        kind = kinds[len(plan)] if len(plan) < len(kinds) else rng.choice(KINDS)
        seconds = {"postgres": rng.uniform(1, 6), "temporal": rng.uniform(1, 6), "db_refuses": rng.uniform(5, 45),
                   "memory_starved": rng.uniform(40, 80)}.get(kind, 0.0)
        plan.append(Fault(round(at, 1), kind, round(seconds, 1), rng.random()))
        at += rng.uniform(20, 90)
    return plan


class Injector:
    """Carries out faults on the stack, writing each to the timeline."""

    def __init__(self, stack: SoakStack, timeline: Timeline):
        self.stack = stack
        self.timeline = timeline
        self.background: set[asyncio.Task] = set()
        self.deploying = False
        self.builds = 1
        self.skipped = 0
        self.drains: list[float] = []
        """Seconds from SIGTERM to exit of every worker drained."""

    async def inject(self, fault: Fault) -> None:
        run = getattr(self, f"_{fault.kind}")
        task = asyncio.create_task(run(fault))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.timeline.say("soak-error", f"a fault's own code failed: {task.exception()!r}")

    async def wait(self) -> None:
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)

    def _pick_worker(self, fault: Fault) -> int | None:
        pids = self.stack.fleet.pids()
        return pids[int(fault.choice * len(pids))] if pids else None

    async def _signal(self, fault: Fault, sig: int, name: str) -> int | None:
        pid = self._pick_worker(fault)
        if pid is None:
            self.timeline.say("fault-skipped", f"{fault.kind}: no live worker")
            return None
        os.kill(pid, sig)
        self.timeline.say(fault.kind, f"{name} worker pid {pid}")
        return pid

    async def _worker_kill(self, fault: Fault) -> None:
        await self._signal(fault, signal.SIGKILL, "SIGKILL")

    async def _worker_drain(self, fault: Fault) -> None:
        pid = await self._signal(fault, signal.SIGTERM, "SIGTERM (drain)")
        if pid is None:
            return
        started = time.monotonic()
        try:
            await asyncio.to_thread(psutil.Process(pid).wait, 180)
        except psutil.NoSuchProcess:
            pass
        self.drains.append(time.monotonic() - started)
        self.timeline.say("drained-worker", f"worker pid {pid} exited {self.drains[-1]:.1f} s after SIGTERM",
                          count=False)

    async def _postgres(self, fault: Fault) -> None:
        mode = "immediate" if fault.choice < 0.5 else "fast"
        fleet = self.stack.fleet
        fleet.paused = True  # a worker started now would fail its schema step: the supervisor waits
        try:
            await asyncio.to_thread(self.stack.pg.stop, mode)
            self.timeline.say("postgres", f"stopped (-m {mode}), down {fault.seconds:g} s")
            await asyncio.sleep(fault.seconds)
            await asyncio.to_thread(self.stack.pg.start)
        finally:
            fleet.paused = False
        self.timeline.say("postgres-up", "PostgreSQL started again", count=False)

    async def _temporal(self, fault: Fault) -> None:
        how = "SIGKILL" if fault.choice < 0.5 else "SIGTERM"
        await asyncio.to_thread(self.stack.kill_temporal, how)
        self.timeline.say("temporal", f"dev server stopped ({how}), down {fault.seconds:g} s")
        await asyncio.sleep(fault.seconds)
        await asyncio.to_thread(self.stack.temporal.start)
        self.timeline.say("temporal-up", "Temporal dev server started again", count=False)

    async def _db_refuses(self, fault: Fault) -> None:
        await self._hba(True)
        self.timeline.say("db_refuses", f"the events database refuses new connections for {fault.seconds:g} s")
        try:
            await asyncio.sleep(fault.seconds)
        finally:
            await self._hba(False)
        self.timeline.say("db-accepts", "the events database takes connections again", count=False)

    async def _hba(self, refuse: bool) -> None:
        """Change pg_hba.conf; PostgreSQL may be down for a restart fault meanwhile: try again for 2 minutes."""
        for _ in range(60):
            try:
                return await asyncio.to_thread(self.stack.refuse_connections, refuse)
            except Exception:  # noqa: BLE001 - the server restarting: its file is changed on the next try
                await asyncio.sleep(2)
        await asyncio.to_thread(self.stack.refuse_connections, refuse)

    async def _memory_starved(self, fault: Fault) -> None:
        limit = 80 + int(fault.choice * 30)  # about an idle worker's own RSS: any chunk takes it over
        build = self.stack.fleet.wanted[-1]
        log = self.stack.fleet.stack.workers_dir / f"starved-{int(self.timeline.elapsed())}.log"
        proc = self.stack.starved_worker(build, limit, log)
        self.timeline.say("memory_starved", f"streaming worker pid {proc.pid} of {build} with "
                                            f"MEMORY_LIMIT_MIB={limit} for {fault.seconds:g} s")
        await asyncio.sleep(fault.seconds)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 180)
        self.drains.append(time.monotonic() - started)
        held = log.read_text(errors="replace").count("backpressure: RSS") if log.exists() else 0
        self.timeline.say("starved-gone", f"starved worker pid {proc.pid} exited {self.drains[-1]:.1f} s after "
                                          f"SIGTERM (code {code}); it held back "
                                          f"{held} time(s)", count=False)

    async def _deploy(self, fault: Fault) -> None:
        if self.deploying:
            self.skipped += 1
            self.timeline.say("fault-skipped", "deploy: the previous rollout is still draining")
            return
        self.deploying = True
        fleet = self.stack.fleet
        old, self.builds = fleet.wanted[-1], self.builds + 1
        new = f"soak-{self.builds}"
        self.timeline.say("deploy", f"rollout of {new} while flows run on {old}")
        def step(line: str) -> None:
            if line.startswith("2.") and new not in fleet.wanted:
                # deploy.py started the new build's workers and made it current: from now on the
                # supervisor keeps both builds at strength while the old one drains.
                fleet.wanted.append(new)
                self.timeline.say("deploy-current", f"{new} is current; {old} drains", count=False)

        try:
            rollout = [sys.executable, "scripts/deploy.py", "rollout", "--build-id", new, "--workers",
                       str(fleet.count), "--keep-old-workers"]
            for _ in range(5):  # Temporal or PostgreSQL may be away for a moment: do the rest again
                code, tail = await run_command(rollout, timeout=600, on_line=step)
                if code == 0:
                    break
                self.timeline.say("deploy-retry", f"deploy.py exited {code}: {tail[-200:]}", count=False)
                await asyncio.sleep(5)
                if new in fleet.wanted:  # it is current already: only the drain is left to do
                    rollout = [sys.executable, "scripts/deploy.py", "drain", old]
            if code != 0:
                if new in fleet.wanted:
                    fleet.wanted.remove(new)
                self.timeline.say("soak-error", f"deploy.py rollout {new} exited {code}: {tail}")
                return
            fleet.wanted.remove(old)
            from etl.devstack.version_workers import stop

            pids = fleet.pids(old)
            await asyncio.to_thread(stop, fleet.stack, pids)
            self.timeline.say("deploy-done", f"{new} is current; {old} drained and its {len(pids)} workers stopped",
                              count=False)
        finally:
            self.deploying = False
