#!/usr/bin/env python3
"""The demo: the whole product on this machine, offline.

Starts the embedded stack (`dev.py up`), a batch and a streaming worker, and the bundled
offline fixture services; runs the synthetic source and every Launchpad (and GitHub) flow
through ETLFlow and StreamingETLFlow; prints what was loaded, per source and event type,
and the Temporal UI address. The stack stays up afterwards so you can look around the UI;
`python scripts/dev.py down` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.core.errors import EtlError  # noqa: E402
from etl.core.settings import Settings, load_settings  # noqa: E402
from etl.devstack.local import DevStack  # noqa: E402
from etl.store.db import Database  # noqa: E402
from etl.workflows.failure_text import root_message  # noqa: E402


def start_workers(settings: Settings, env: dict[str, str]) -> list[subprocess.Popen]:
    logs = settings.state_dir / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for kind in ("etl_worker", "streaming_worker"):
        log = open(logs / f"{kind}.log", "ab")
        procs.append(subprocess.Popen([sys.executable, "-m", f"workers.{kind}"], cwd=ROOT, stdout=log,
                                      stderr=log, stdin=subprocess.DEVNULL, env=dict(os.environ, **env)))
        log.close()
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(70)
        except subprocess.TimeoutExpired:
            proc.kill()


BOTH = ("batch", "streaming")


def demo_flows(fixtures: dict[str, str]) -> list[tuple[str, dict, tuple[str, ...]]]:
    """(strategy, args, which workflows) for every flow the demo runs, per available source.

    Most queries run through both workflows: the second run shows that nothing is doubled."""
    flows: list[tuple[str, dict, tuple[str, ...]]] = [
        ("synthetic-events", {"count": 20_000, "seed": 1, "bad_rate": 0.01}, BOTH),
        ("synthetic-events", {"count": 50_000, "seed": 2, "bad_rate": 0.01, "page_size": 500}, ("streaming",)),
    ]
    for source, url in fixtures.items():
        module = importlib.import_module(f"sources.{source}.fixture.demo")
        for strategy, args in module.demo_queries(url):
            flows.append((strategy, args, BOTH))
    return flows


def start_fixtures(settings: Settings) -> tuple[dict[str, str], dict[str, str], list[subprocess.Popen]]:
    """Start the offline fixture services the sources ship (those with a `fixture/demo.py`).

    Returns their base URLs, the settings the demo's workers need to reach them, and the processes."""
    import sources
    from etl.devstack.servers import free_port, port_answers

    urls, env, procs = {}, {}, []
    for source in sorted(info.name for info in pkgutil.iter_modules(sources.__path__) if info.ispkg):
        try:
            if importlib.util.find_spec(f"sources.{source}.fixture.demo") is None:
                continue
        except ModuleNotFoundError:
            continue
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", f"sources.{source}.fixture", "--port", str(port)],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while not port_answers(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        urls[source] = f"http://127.0.0.1:{port}/"
        # Addresses and tokens a fixture needs reach workers as settings, never as query arguments.
        demo = importlib.import_module(f"sources.{source}.fixture.demo")
        env.update(getattr(demo, "demo_settings", lambda url: {})(urls[source]))
    return urls, env, procs


async def run_all(settings: Settings, flows: list[tuple[str, dict, tuple[str, ...]]]) -> list[tuple[str, str, object]]:
    from etl.launch.plan import plan_flow, start_flow
    from etl.runtime.client import connect

    client = await connect(settings)
    results = []
    for streaming in (False, True):
        kind = "streaming" if streaming else "batch"
        plans = [plan_flow(settings, strategy, args, streaming=streaming)
                 for strategy, args, kinds in flows if kind in kinds]
        handles = [await start_flow(client, plan) for plan in plans]
        for plan, (handle, _) in zip(plans, handles):
            try:
                results.append((plan.workflow_name, plan.workflow_id, await handle.result()))
            except Exception as exc:  # noqa: BLE001 - show the failure and go on with the rest
                results.append((plan.workflow_name, plan.workflow_id, f"FAILED: {root_message(exc)}"))
    return results


def counts_by_type(db: Database) -> list[tuple]:
    from psycopg2 import sql

    return db.run(lambda cur: (cur.execute(sql.SQL(
        "SELECT coalesce(source_kind_id, '?'), coalesce(event_type, '?'), coalesce(relation_type, '?'), count(*) "
        "FROM {t} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").format(t=db.tables.events)), cur.fetchall())[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    try:
        settings = load_settings()
        stack = DevStack(settings)
        print("starting the embedded stack (Temporal dev server + PostgreSQL) ...", flush=True)
        stack.up()
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fixtures, worker_env, fixture_procs = start_fixtures(settings)
    if fixtures:
        print("offline fixture services: " + ", ".join(f"{k} at {v}" for k, v in fixtures.items()))
    workers = start_workers(settings, worker_env)
    try:
        flows = demo_flows(fixtures)
        print(f"running {len(flows)} flows through ETLFlow, then StreamingETLFlow ...", flush=True)
        results = asyncio.run(run_all(settings, flows))
    finally:
        stop(workers)
        stop(fixture_procs)

    print()
    print(f"{'workflow':18} {'id':58} {'extracted':>9} {'loaded':>7} {'rejected':>8} {'present':>8}")
    failed = 0
    for name, wid, summary in results:
        if isinstance(summary, str):
            failed += 1
            print(f"{name:18} {wid:58} {summary}")
        else:
            print(f"{name:18} {wid[:58]:58} {summary.extracted:>9,} {summary.loaded:>7,} {summary.rejected:>8,} "
                  f"{summary.unchanged:>8,}")
    db = Database.get(settings)
    print()
    print(f"events in table {settings.events_table!r}, per source and type:")
    for source, event_type, relation, count in counts_by_type(db):
        print(f"  {source:12} {event_type:18} {relation:32} {count:>8,}")
    print(f"  {'total':63} {db.count_events():>8,}   (rejects: {db.count_rejects():,})")
    print()
    print(f"Temporal UI: {settings.ui_url}  (the stack keeps running; stop it with `python scripts/dev.py down`)")
    print(f"PostgreSQL:  {settings.public_database_url()}")
    return 1 if failed else 0


if __name__ == "__main__":
    from etl.runtime.exit import exit_process

    exit_process(main())  # not sys.exit: see etl/runtime/exit.py (the SDK's threads can crash finalisation)
