#!/usr/bin/env python3
"""A simulated day: the fleet under a mixed workload and mixed faults, then a verdict.

    python scripts/soak.py --minutes N --seed S [--workers W] [--keep]
    python scripts/soak.py --report              RELIABILITY.md's "Soak" section from the results

On a private stack (its own PostgreSQL and Temporal dev server on free ports, the GitHub and
Launchpad fixtures on loopback) it runs W batch and W streaming worker processes (default 2),
launches the day's work (scripts/soaking/workload.py) and injects a fault every 20-90 s
(scripts/soaking/faults.py), both drawn from the seed, printing a timeline as it goes. Launches and
faults stop at 70 % of the N minutes (at most N-3 minutes in); the rest is the drain deadline, by
which every flow must have ended. Then it checks, from the database and Temporal alone
(scripts/soaking/checks.py): nothing lost or doubled, every bad record rejected once, nothing
running, nothing failed but the bad queries (fast), the schedule's windows contiguous, staging
empty after a sweep, worker RSS within its limit, every history within its continue-as-new
budget, no workflow task failure in any history. Exit 0 only if every check holds, 1 if one
fails, 2 on bad arguments. The figures go to --results (default .etl/soak-results.json), one
entry per seed; --report renders them into RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.soaking import report  # noqa: E402

DEFAULT_RESULTS = ROOT / ".etl" / "soak-results.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/soak.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, metavar="N", help="how long the whole soak lasts (2 to 1440)")
    parser.add_argument("--seed", type=int, metavar="S", help="draws the workload and the faults (0 or more)")
    parser.add_argument("--workers", type=int, default=2, metavar="W",
                        help="batch and streaming worker processes each (1 to 8, default 2)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where the figures go (JSON)")
    parser.add_argument("--report", action="store_true", help="write RELIABILITY.md's Soak section and stop")
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md", help="with --report: the document")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory (logs) afterwards")
    parser.add_argument("--json", action="store_true", help="end with the verdict as one JSON line")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report:
        data = report.load(args.results)
        if not data.get("runs"):
            parser.error(f"--report: {args.results} holds no soak runs; run `python scripts/soak.py --minutes N "
                         f"--seed S` first")
        args.output.write_text(report.splice(args.output.read_text(), report.section(data)))
        print(f"wrote the Soak section of {args.output} from {len(data['runs'])} runs in {args.results}")
        return 0
    if args.minutes is None or args.seed is None:
        parser.error("give --minutes N and --seed S (or --report)")
    if not 2 <= args.minutes <= 1440:
        parser.error(f"--minutes {args.minutes:g}: give 2 to 1440 (the last 30 %, or 3 minutes at most, drain)")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: give 0 or more")
    if not 1 <= args.workers <= 8:
        parser.error(f"--workers {args.workers}: give 1 to 8")
    root = Path(tempfile.mkdtemp(prefix=f"etl-soak-{args.seed}-"))
    try:
        result = asyncio.run(soak(args.minutes, args.seed, args.workers, root))
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped; no verdict", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"the stack's directory (worker logs, server logs): {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report.save(args.results, result)
    if args.json:
        print(json.dumps({k: result[k] for k in ("seed", "minutes", "passed", "faults", "figures")}))
    return 0 if result["passed"] else 1


async def soak(minutes: float, seed: int, workers: int, root: Path) -> dict:
    from etl.runtime.client import connect
    from etl.store.db import Database
    from scripts.soaking.checks import run_checks
    from scripts.soaking.commands import run_command
    from scripts.soaking.faults import KINDS, Injector, fault_plan
    from scripts.soaking.stack import SoakStack
    from scripts.soaking.timeline import Timeline
    from scripts.soaking.workload import SCHEDULE_ID, Workload

    total_s = minutes * 60
    active_s = max(total_s * 0.7, total_s - 180)
    plan = fault_plan(seed, active_s)
    timeline = Timeline()
    print(f"soak seed {seed}: {minutes:g} minutes, launches and faults for {active_s:.0f} s, then drain; "
          f"{len(plan)} faults planned", flush=True)
    with SoakStack(root, seed, workers) as stack:
        timeline.say("stack", f"PostgreSQL :{stack.pg.port}, Temporal {stack.temporal.address}, "
                              f"{len(stack.fleet.pids())} workers of soak-1", count=False)
        client = await connect(stack.settings)
        workload = Workload(stack, client, timeline, seed, root)
        injector = Injector(stack, timeline)
        supervisor = asyncio.create_task(_supervise(stack, timeline))

        async def faults() -> None:
            for fault in plan:
                await asyncio.sleep(max(0.0, fault.at_s - timeline.elapsed()))
                await injector.inject(fault)

        await asyncio.gather(workload.run(active_s), faults())
        code, tail = await run_command([sys.executable, "scripts/schedule.py", "delete", SCHEDULE_ID], timeout=60)
        timeline.say("drain", f"launches and faults over; schedule deleted ({'ok' if code == 0 else tail}); "
                              f"waiting for every flow to end", count=False)
        await injector.wait()
        await _drain(client, total_s, timeline)
        supervisor.cancel()
        stack.fleet.sample()
        db = Database.get(stack.settings)
        checks, figures = await run_checks(client, db, stack.settings, workload.launched, stack.fleet)
        db.close()
    faults_done = {k: timeline.counts[k] for k in KINDS if timeline.counts[k]}
    launched = workload.launched
    figures.update(duplicates=launched.duplicates, reruns=launched.reruns, fanouts=launched.fanouts,
                   grown_issues=launched.grown_issues, source_faults=launched.source_faults,
                   workers_restarted=stack.fleet.restarted, soak_errors=timeline.counts["soak-error"],
                   longest_drain_s=round(max(injector.drains, default=0.0), 1))
    passed = all(c.ok for c in checks) and not timeline.counts["soak-error"]
    print(f"\nverdict for seed {seed} ({minutes:g} minutes): faults " +
          (", ".join(f"{k} {v}" for k, v in faults_done.items()) or "none") +
          f"; {figures['flows']} flows ({figures['flow_runs']} runs), {figures['events']:,} events, "
          f"{figures['updated']:,} updated, {figures['rejects']:,} rejects; longest worker drain "
          f"{figures['longest_drain_s']:g} s")
    for check in checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name:<14} {check.figure}"
              + (f"\n       {check.detail}" if check.detail and not check.ok else ""))
    if timeline.counts["soak-error"]:
        print(f"  FAIL soak errors     {timeline.counts['soak-error']} (see the timeline)")
    print("PASSED" if passed else "FAILED", flush=True)
    return {"seed": seed, "minutes": minutes, "passed": passed, "faults": faults_done, "figures": figures,
            "checks": [c.__dict__ for c in checks], "timeline": timeline.lines,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}"}


async def _supervise(stack, timeline) -> None:
    """Keep the fleet at strength every 2 s, as a process manager would."""
    while True:
        started = await asyncio.to_thread(stack.fleet.supervise)
        if started:
            timeline.say("restart", f"{started} worker(s) started to replace ones that exited", count=False)
        await asyncio.sleep(2)


async def _drain(client, total_s: float, timeline) -> None:
    """Wait until no workflow runs, or the drain deadline (the soak's end) passes."""
    while timeline.elapsed() < total_s:
        try:
            running = [wf async for wf in client.list_workflows("ExecutionStatus = 'Running'")]
        except Exception:  # noqa: BLE001 - the server restarting at the very end: ask again
            running = [None]
        if not running:
            timeline.say("drained", "no flow runs", count=False)
            return
        await asyncio.sleep(3)
    timeline.say("deadline", "the drain deadline passed with flows still running", count=False)


if __name__ == "__main__":
    sys.exit(main())
