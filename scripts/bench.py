#!/usr/bin/env python3
"""The project's benchmark: prints figures, never passes or fails on a timing.

On a private stack (its own PostgreSQL and Temporal dev server on free ports) and the
synthetic source, in one run:
  loader     `Database.insert_events_batch` beside a plain "COPY into a temp table, then
             INSERT ... ON CONFLICT DO NOTHING" written here by hand, on the same events
  plain      a single-threaded Python loop calling the same extract, transform and load code
  batch      ETLFlow on worker processes
  streaming  StreamingETLFlow on worker processes
For each flow: events/s, ratio to plain, peak worker RSS, the largest payload in the
history, and the longest run's history (events), over every continue-as-new run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.activities.batch import record_rejects  # noqa: E402
from etl.core.extract import ExtractStrategy  # noqa: E402
from etl.core.models import transform  # noqa: E402
from etl.core.query import QueryFactory  # noqa: E402
from etl.core.settings import Settings, settings_from_env  # noqa: E402
from etl.devstack.servers import private_stack  # noqa: E402
from etl.store.db import _COLUMN_LIST, Database  # noqa: E402


def synthetic_events(n: int, seed: int):
    from sources.synthetic.flows.events import record

    events, _ = transform(record(seed, 0.0, i) for i in range(n))
    return events


def bench_loader(settings: Settings, n: int, batch: int) -> dict:
    events = synthetic_events(n, seed=901)
    db = Database.get(settings.replace(events_table=f"bench_loader_{uuid.uuid4().hex[:8]}"))
    db.ensure_schema()
    start = time.perf_counter()
    for i in range(0, n, batch):
        db.insert_events_batch(events[i:i + batch])
    ours = n / (time.perf_counter() - start)

    ref = Database.get(settings.replace(events_table=f"bench_ref_{uuid.uuid4().hex[:8]}"))
    ref.ensure_schema()
    conn = psycopg2.connect(settings.dsn())
    table = ref.tables.name
    start = time.perf_counter()
    for i in range(0, n, batch):
        buf = io.StringIO("".join(e.copy_row() for e in events[i:i + batch]))
        with conn.cursor() as cur:
            cur.execute(f'CREATE TEMP TABLE IF NOT EXISTS ref_buf ON COMMIT DELETE ROWS AS '
                        f'SELECT {_COLUMN_LIST.as_string(conn)} FROM "{table}" WITH NO DATA')
            cur.copy_expert(f"COPY ref_buf ({_COLUMN_LIST.as_string(conn)}) FROM STDIN", buf)
            cur.execute(f'INSERT INTO "{table}" ({_COLUMN_LIST.as_string(conn)}) '
                        f'SELECT {_COLUMN_LIST.as_string(conn)} FROM ref_buf ON CONFLICT (event_id) DO NOTHING')
        conn.commit()
    reference = n / (time.perf_counter() - start)
    conn.close()
    return {"rows_per_s": round(ours), "reference_rows_per_s": round(reference), "ratio": round(ours / reference, 3)}


def bench_plain(settings: Settings, n: int, page_size: int) -> dict:
    db = Database.get(settings.replace(events_table=f"bench_plain_{uuid.uuid4().hex[:8]}"))
    db.ensure_schema()
    strategy = ExtractStrategy.create("synthetic-events")
    query = QueryFactory.create("synthetic", {"count": n, "seed": 11, "bad_rate": 0.001, "page_size": page_size})
    proc = psutil.Process()
    peak = proc.memory_info().rss
    start = time.perf_counter()
    for page in strategy.pages(query, None, settings):
        events, rejects = transform(page.records)
        db.insert_events_batch(events)
        if rejects:
            record_rejects(db, strategy.name, rejects)
        peak = max(peak, proc.memory_info().rss)
    seconds = time.perf_counter() - start
    return {"events_per_s": round(n / seconds), "seconds": round(seconds, 2), "peak_rss_mib": round(peak / 2**20, 1),
            "max_payload_bytes": 0, "max_history_events": 0}


class WorkerFleet:
    """Worker processes of one kind, with their peak RSS sampled while they run."""

    def __init__(self, settings_env: dict, kind: str, queue: str, count: int, concurrency: int):
        env = dict(os.environ, **settings_env)
        env["ETL_TASK_QUEUE" if kind == "etl_worker" else "ETL_STREAMING_TASK_QUEUE"] = queue
        self.procs = [subprocess.Popen([sys.executable, "-m", f"workers.{kind}", "--concurrency", str(concurrency)],
                                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(count)]
        self.peak = 0

    def sample(self) -> None:
        for proc in self.procs:
            try:
                self.peak = max(self.peak, psutil.Process(proc.pid).memory_info().rss)
            except psutil.NoSuchProcess:
                pass

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def bench_flow(settings: Settings, env: dict, n: int, streaming: bool, workers: int, concurrency: int,
                     page_size: int, batch_size: int) -> dict:
    from etl.launch.plan import plan_flow, start_flow
    from etl.runtime.client import connect

    table = f"bench_{'stream' if streaming else 'batch'}_{uuid.uuid4().hex[:8]}"
    flow_settings = settings.replace(events_table=table)
    Database.get(flow_settings).ensure_schema()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    fleet = WorkerFleet(dict(env, EVENTS_TABLE=table), "streaming_worker" if streaming else "etl_worker",
                        queue, workers, concurrency)
    try:
        client = await connect(settings)
        await asyncio.sleep(2)  # let the workers connect and poll
        fields = {"chunks_in_flight": workers * concurrency} if streaming else {"batch_size": batch_size}
        plan = plan_flow(flow_settings, "synthetic-events",
                         {"count": n, "seed": 12 if streaming else 13, "bad_rate": 0.001, "page_size": page_size},
                         streaming=streaming, task_queue=queue, workflow_id=f"bench-{queue}", **fields)
        start = time.perf_counter()
        handle, _ = await start_flow(client, plan)
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            fleet.sample()
            await asyncio.wait([result], timeout=0.2)
        seconds = time.perf_counter() - start
        summary = result.result()
        from etl.runtime.history import figures

        hist = await figures(client, plan.workflow_id)
        largest, longest = hist.max_payload_bytes, hist.max_history_events
    finally:
        fleet.stop()
    return {"events_per_s": round(n / seconds), "seconds": round(seconds, 2),
            "peak_rss_mib": round(fleet.peak / 2**20, 1), "max_payload_bytes": largest,
            "max_history_events": longest, "loaded": summary.loaded, "rejected": summary.rejected,
            "runs": summary.runs}


def run_parts(results: dict, parts: list[str], opts: argparse.Namespace, settings: Settings, env: dict) -> None:
    if "loader" in parts:
        print(f"loader: {opts.loader_events:,} events ...", flush=True)
        results["loader"] = bench_loader(settings, opts.loader_events, 10_000)
    if "plain" in parts or len(parts) > 1:
        print(f"plain loop: {opts.events:,} events ...", flush=True)
        results["plain"] = bench_plain(settings, opts.events, opts.page_size)
    for kind in ("batch", "streaming"):
        if kind in parts:
            print(f"{kind}: {opts.events:,} events on {opts.workers} worker process(es) ...", flush=True)
            results[kind] = asyncio.run(bench_flow(settings, env, opts.events, kind == "streaming", opts.workers,
                                                   opts.concurrency, opts.page_size, opts.batch_size))
    plain = results.get("plain", {}).get("events_per_s")
    for kind in ("plain", "batch", "streaming"):
        if kind in results:
            results[kind]["ratio"] = round(results[kind]["events_per_s"] / plain, 3) if plain else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per flow (default 200,000)")
    parser.add_argument("--loader-events", type=int, default=100_000, help="events for the loader figures")
    parser.add_argument("--page-size", type=int, default=2_000, help="records per source page")
    parser.add_argument("--batch-size", type=int, default=10_000, help="ETLFlow records per batch")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per flow (default 2: the cores)")
    parser.add_argument("--concurrency", type=int, default=1, help="activities per worker process")
    parser.add_argument("--only", choices=["loader", "plain", "batch", "streaming"], action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    opts = parser.parse_args(argv)
    parts = opts.only or ["loader", "plain", "batch", "streaming"]
    if opts.events < 1:
        parser.error(f"--events {opts.events}: give at least 1")

    root = Path(tempfile.mkdtemp(prefix="etl-bench-"))
    results: dict = {}
    print(f"starting a private stack under {root} ...", flush=True)
    try:
        # Durable settings (fsync on), as a user's database would run.
        with private_stack(root, fast=False) as (_, _, env):
            settings = settings_from_env(env)
            try:
                run_parts(results, parts, opts, settings, env)
            finally:
                Database.close_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    if "loader" in results:
        r = results["loader"]
        print(f"loader     {r['rows_per_s']:>9,} rows/s   reference (COPY temp + INSERT ON CONFLICT) "
              f"{r['reference_rows_per_s']:,} rows/s   ratio {r['ratio']:.2f}")
    print(f"{'flow':10} {'events/s':>9} {'ratio':>6} {'seconds':>8} {'peak RSS MiB':>13} {'max payload B':>14} "
          f"{'max history':>12}")
    for kind in ("plain", "batch", "streaming"):
        if kind in results:
            r = results[kind]
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
            print(f"{kind:10} {r['events_per_s']:>9,} {ratio:>6} {r['seconds']:>8} {r['peak_rss_mib']:>13} "
                  f"{r['max_payload_bytes']:>14,} {r['max_history_events']:>12,}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    from etl.runtime.exit import exit_process

    exit_process(main())  # not sys.exit: see etl/exit.py (the SDK's threads can crash finalisation)
