"""The day's work, drawn from the seed: what the soak launches while faults land, and what it
therefore expects to find at the end.

    schedule      `scripts/schedule.py create` of github-issues every minute (load mode upsert) over a
                  repository the GitHub fixture grows while it runs (a new issue every 4-12 s):
                  incremental windows from the soak's start
    fan-outs      `scripts/run_queue.py --durable` over the Launchpad fixture's team and over a GitHub
                  flow file; later again over a window one day longer, after a bug's importance and an
                  issue's title changed, in load modes upsert and history
    synthetic     large synthetic flows every 8-25 s in both workflows, bad records at 0.2 % and hostile
                  values at 0.05 % (huge integers, deep nesting, NUL, lone surrogates...); some
                  continue as new often (a history budget of 300 events); some launched twice at once
                  (the second attaches), some run again over the same records in upsert or history mode
    bad queries   github-issues of a repository the fixture does not have: the flow must fail, fast
    source faults the fixtures answer 5xx, 429, spent rate limits (up to 20 s) and stalls
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from temporalio.client import Client

from etl.launch.plan import plan_flow, start_flow
from scripts.soaking.commands import run_command
from scripts.soaking.stack import SoakStack
from scripts.soaking.timeline import Timeline
from sources.launchpad.fixture.server import Faults as LaunchpadFaults
from sources.launchpad.fixture.world import TEAM, WINDOW

SCHEDULE_ID = "soak-github-growing"
GITHUB_REPO = ("octo-org", "hello-world")
BAD_FAIL_S = 60.0
"""A flow whose query is bad fails within this many seconds of its start."""


@dataclass
class Launched:
    """What the soak started, as the checks need it."""

    synthetic: dict[int, dict] = field(default_factory=dict)
    """Seed -> the synthetic query's arguments (re-runs reuse a seed: the same records)."""
    fixture_flows: list[tuple[str, dict]] = field(default_factory=list)
    """(strategy, args) of every fixture flow a fan-out ran."""
    bad: list[str] = field(default_factory=list)
    """Workflow ids of the flows meant to fail."""
    schedule_since: datetime | None = None
    flows: int = 0
    duplicates: int = 0
    reruns: int = 0
    fanouts: int = 0
    grown_issues: int = 0
    source_faults: int = 0


class Workload:
    def __init__(self, stack: SoakStack, client: Client, timeline: Timeline, seed: int, work_dir: Path):
        self.stack = stack
        self.client = client
        self.timeline = timeline
        self.rng = random.Random(f"soak-workload-{seed}")
        self.seed = seed
        self.work_dir = work_dir
        self.launched = Launched()

    async def run(self, active_s: float) -> None:
        """Launch the day's work until `active_s` seconds after the soak's start."""
        await self._create_schedule()
        loops = [self._grow(active_s), self._synthetic(active_s), self._fanouts(active_s),
                 self._bad_queries(active_s), self._source_faults(active_s)]
        await asyncio.gather(*loops)
        self.stack.github.faults.clear()
        self.stack.launchpad.faults = LaunchpadFaults()

    async def _until(self, active_s: float, low: float, high: float):
        """Sleep `low`..`high` s at a time until `active_s`; yields after each sleep."""
        while True:
            pause = self.rng.uniform(low, high)
            await asyncio.sleep(min(pause, max(0.0, active_s - self.timeline.elapsed())))
            if self.timeline.elapsed() >= active_s:
                return
            yield

    async def _start(self, strategy: str, args: dict, *, streaming: bool = False, twice: bool = False,
                     workflow_id: str | None = None, **fields) -> str | None:
        """Start a flow (Temporal may be away for a few seconds: keep trying for 90 s)."""
        plan = plan_flow(self.stack.settings, strategy, args, streaming=streaming, workflow_id=workflow_id, **fields)
        for _ in range(90):
            try:
                if twice:
                    (_, first), (_, second) = await asyncio.gather(start_flow(self.client, plan),
                                                                   start_flow(self.client, plan))
                    self.launched.duplicates += 1
                    self.timeline.say("duplicate", f"{plan.workflow_id} launched twice at once: "
                                                   f"{'started' if first else 'attached'}, "
                                                   f"{'started' if second else 'attached'}")
                else:
                    await start_flow(self.client, plan)
                self.launched.flows += 1
                return plan.workflow_id
            except Exception as exc:  # noqa: BLE001 - Temporal restarting: try again
                last = exc
                await asyncio.sleep(1)
        self.timeline.say("soak-error", f"could not start {plan.workflow_id}: {last!r}")
        return None

    async def _create_schedule(self) -> None:
        since = datetime.now(timezone.utc).replace(microsecond=0)
        self.launched.schedule_since = since
        owner, repo = GITHUB_REPO
        code, tail = await run_command([sys.executable, "scripts/schedule.py", "create", SCHEDULE_ID, "--strategy",
                                 "github-issues", "--arg", f"owner={owner}", "--arg", f"repo={repo}", "--interval",
                                 "1m", "--since", since.isoformat(), "--load-mode", "upsert"], timeout=120)
        self.timeline.say("schedule", f"{SCHEDULE_ID}: github-issues every minute from {since:%H:%M:%S}"
                          if code == 0 else f"schedule.py create exited {code}: {tail}")

    async def _grow(self, active_s: float) -> None:
        async for _ in self._until(active_s, 4, 12):
            n = self.stack.github.add_issue(datetime.now(timezone.utc))
            self.launched.grown_issues += 1
            self.timeline.say("grow", f"issue #{n} filed on the GitHub fixture", count=False)

    async def _synthetic(self, active_s: float) -> None:
        number = 0
        async for _ in self._until(active_s, 8, 25):
            number += 1
            streaming = self.rng.random() < 0.5
            earlier = list(self.launched.synthetic)
            if earlier and self.rng.random() < 0.25:
                seed = self.rng.choice(earlier)
                args, mode = self.launched.synthetic[seed], self.rng.choice(("upsert", "history"))
                self.launched.reruns += 1
            else:
                seed = self.seed * 1000 + number
                args = {"count": self.rng.choice((10_000, 20_000, 30_000, 40_000)), "seed": seed,
                        "bad_rate": 0.002, "hostile_rate": 0.0005, "page_size": 500}
                mode = "insert"
            fields = ({"chunk_count": 4, "chunks_in_flight": 2, "pages_per_call": 8} if streaming
                      else {"batch_size": 2_500, "partitions": 2})
            budget = 300 if self.rng.random() < 0.4 else 4000
            twice = self.rng.random() < 0.2
            workflow_id = await self._start("synthetic-events", args, streaming=streaming, twice=twice,
                                            load_mode=mode, history_budget=budget, **fields)
            if workflow_id:
                self.launched.synthetic[seed] = args
                self.timeline.say("flow", f"{'StreamingETLFlow' if streaming else 'ETLFlow'} synthetic "
                                          f"{args['count']:,} records (seed {seed}, {mode}, history budget {budget})")

    async def _fanouts(self, active_s: float) -> None:
        start, end = WINDOW
        await self._launchpad_fanout(start.date().isoformat(), end.date().isoformat(), "insert")
        await self._github_fanout("2024-01-01", "2025-01-01", "insert")
        await asyncio.sleep(max(0.0, min(active_s / 2, active_s - 5) - self.timeline.elapsed()))
        if self.timeline.elapsed() >= active_s:
            return
        bug = sorted(self.stack.launchpad.world.bugs)[self.rng.randrange(10)]
        self.stack.launchpad.set_importance(bug, "Critical")
        self.stack.github.edit_issue(1, title="Issue 1: edited while the soak runs", add_label="soak")
        self.timeline.say("edit", f"Launchpad bug {bug} is now Critical; GitHub issue #1 retitled and labelled",
                          count=False)
        await self._launchpad_fanout(start.date().isoformat(), "2024-04-02", "upsert")
        await self._github_fanout("2024-01-01", "2025-01-02", "history")

    async def _fanout(self, argv: list[str], flows: list[tuple[str, dict]], what: str) -> None:
        for attempt in range(10):
            code, tail = await run_command([sys.executable, "scripts/run_queue.py", *argv, "--durable", "--no-wait"],
                                    timeout=120)
            if code == 0:
                self.launched.fixture_flows += flows
                self.launched.fanouts += 1
                self.timeline.say("fan-out", f"{what}: {len(flows)} flows")
                return
            await asyncio.sleep(3)
        self.timeline.say("soak-error", f"run_queue.py {what} exited {code}: {tail}")

    async def _launchpad_fanout(self, date_from: str, date_to: str, mode: str) -> None:
        from sources.launchpad.fixture.demo import FLOWS
        from sources.launchpad.fixture.world import MEMBERS

        root = self.stack.launchpad.root
        flows = [(flow, {"member": m, "data_date_start": date_from, "data_date_end": date_to, "service_root": root})
                 for m in MEMBERS for flow in FLOWS]
        await self._fanout(["--team", TEAM, "--source", "launchpad", "--from", date_from, "--to", date_to,
                            "--arg", f"service_root={root}", "--load-mode", mode], flows,
                           f"Launchpad team {TEAM} {date_from}..{date_to} ({mode})")

    async def _github_fanout(self, since: str, until: str, mode: str) -> None:
        owner, repo = GITHUB_REPO
        flows = [(s, {"owner": owner, "repo": repo, "since": since, "until": until})
                 for s in ("github-issues", "github-pull_requests")]
        path = self.work_dir / f"github-{until}.json"
        path.write_text(json.dumps([{"strategy": s, "args": a, "streaming": s.endswith("requests")}
                                    for s, a in flows]))
        await self._fanout([str(path), "--load-mode", mode], flows, f"GitHub flows {since}..{until} ({mode})")

    async def _bad_queries(self, active_s: float) -> None:
        number = 0
        async for _ in self._until(active_s, active_s / 4, active_s / 2.5):
            number += 1
            owner, _ = GITHUB_REPO
            repo = f"no-such-repo-{number}"
            workflow_id = await self._start("github-issues", {"owner": owner, "repo": repo, "since": "2024-01-01",
                                                              "until": "2024-02-01"}, streaming=number % 2 == 0)
            if workflow_id:
                self.launched.bad.append(workflow_id)
                self.timeline.say("bad-query", f"github-issues of {owner}/{repo} (the fixture has none): must fail")

    async def _source_faults(self, active_s: float) -> None:
        github = self.stack.github
        async for _ in self._until(active_s, 6, 18):
            kind = self.rng.choice(("5xx", "429", "rate_limit", "stall", "launchpad"))
            self.launched.source_faults += 1
            if kind == "launchpad":
                self.stack.launchpad.faults = LaunchpadFaults(rate=0.05, slow_rate=0.02, slow_seconds=2,
                                                              seed=self.rng.randrange(1000))
                self.timeline.say("source-fault", "Launchpad fixture: 5 % of requests 5xx/429, 2 % slow, for 15 s")
                await asyncio.sleep(15)
                self.stack.launchpad.faults = LaunchpadFaults()
                continue
            seconds = {"429": 1.0, "rate_limit": self.rng.choice((3.0, 8.0, 20.0)), "stall": 3.0}.get(kind, 1.0)
            github.inject(kind, count=2 if kind == "5xx" else 1, seconds=seconds)
            shown = f" ({seconds:g} s)" if kind != "5xx" else ""
            self.timeline.say("source-fault", f"GitHub fixture: {kind}{shown}")
