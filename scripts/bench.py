#!/usr/bin/env python3
"""The project's benchmark: prints figures, never passes or fails on a timing.

On a private stack (its own PostgreSQL and Temporal dev server on free ports) and the
synthetic source, in one run:
  loader     `Events.insert` beside a plain "COPY into a temp table, then
             INSERT ... ON CONFLICT DO NOTHING" written here by hand, on the same events
  plain      a single-threaded Python loop calling the same extract, transform and load code
  batch      ETLFlow on worker processes
  streaming  StreamingETLFlow on worker processes
  transform  `transform()` + `copy_row()` alone on 100,000 records already in memory (the best
             of three passes, before the servers start)
  limit      the same rows pre-formatted and COPY'd straight into an events-shaped table:
             the database's own ceiling on this machine, measured in the same run
  full       (with --prefill ROWS) the loader into an events table already holding ROWS rows,
             beside the same load into an empty one
  modes      the load modes on the loader's events: insert into an empty table, insert of rows
             all present; upsert of rows all present and unchanged, upsert and history of rows
             all changed; each with PostgreSQL's CPU seconds per million rows
  replay     StreamingETLFlow of the GitHub source over the fixture API: archiving, reading the
             fixture, and replaying from the source archive with the fixture stopped (records/s)
For each flow: events/s, ratio to plain, peak worker RSS, the largest payload in the
history, the longest run's history (events), over every continue-as-new run, and the CPU
seconds per million events of every process involved (worker processes, the PostgreSQL
server and its backends, the Temporal dev server, and this process), with the share of each.
CPU seconds per event are the robust figure on a busy machine; wall-clock rates are not (the
CPU the rest of the machine used meanwhile is printed beside them).

For 10,000,000 events: `--events 10000000 --prefill 10000000` (about 20 minutes on 2 cores; the
flows keep bounded memory, and the database is set to checkpoint by time, not by WAL volume).
Autovacuum is off: plain, batch and streaming each vacuum, analyse and checkpoint after their run,
counted in their CPU (not their seconds), so each pays for its own rows' maintenance and none for
another's, whenever autovacuum would have woken.
This machine's speed drifts: `--rounds 3` runs plain, batch and streaming three times in turn and
reports medians, each flow's ratio taken against the plain loop of its own round.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.core.extract import ExtractStrategy  # noqa: E402
from etl.core.models import transform  # noqa: E402
from etl.core.query import QueryFactory  # noqa: E402
from etl.core.settings import Settings, settings_from_env  # noqa: E402
from etl.devstack.servers import private_stack  # noqa: E402
from etl.store.db import Database  # noqa: E402
from etl.store.events import COLUMN_LIST, Events  # noqa: E402
from etl.store.rejects import Rejects  # noqa: E402
from scripts.bench_cpu import CpuMeter  # noqa: E402
from scripts.bench_replay import bench_replay  # noqa: E402

STACK_PIDS: dict[str, int] = {}
"""`postgres` and `temporal`: the private stack's server pids, for the CPU meters."""


def wal_lsn(settings: Settings) -> str:
    conn = psycopg2.connect(settings.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def wal_figures(settings: Settings, start: str, n: int) -> dict:
    """Bytes of WAL written since `start`, per event: what the durable writes of a run cost."""
    conn = psycopg2.connect(settings.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start,))
            return {"wal_bytes_per_event": round(float(cur.fetchone()[0]) / n)}
    finally:
        conn.close()


def settle(settings: Settings) -> None:
    """Vacuum and analyse every table, then checkpoint. Autovacuum is off in the bench's stack: a
    flow settles after its run, inside its CPU figures but not its seconds, so each flow pays for
    the maintenance its own rows need and none for another's (or for the parts before the flows,
    settled once before the first), whenever autovacuum would have woken."""
    conn = psycopg2.connect(settings.dsn())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE)")
            cur.execute("CHECKPOINT")
    finally:
        conn.close()


def stack_meter(workers: list[int] | None = None) -> CpuMeter:
    groups = {"workers": workers or [], "postgres": [STACK_PIDS["postgres"]],
              "temporal": [STACK_PIDS["temporal"]], "launcher": [os.getpid()]}
    # The launcher's own time only: the workers and the Temporal server are its children.
    return CpuMeter(groups, recursive={"launcher": False})


def synthetic_records(n: int, seed: int) -> list[dict]:
    from sources.synthetic.flows.events import record

    return [record(seed, 0.0, i) for i in range(n)]


def bench_transform(n: int) -> dict:
    """`transform()` + `copy_row()` alone, on records already in memory: the Python cost per event."""
    records = synthetic_records(n, seed=902)
    best = None
    for _ in range(3):  # the best of three: a worker transforms page after page, with warm caches
        start, cpu = time.perf_counter(), time.process_time()
        events, _ = transform(records)
        rows = [e.copy_row() for e in events]
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or seconds < best[0]:
            best = (seconds, cpu, len(rows))
        del events, rows
    seconds, cpu, count = best
    return {"events_per_s": round(count / seconds), "seconds": round(seconds, 2),
            "cpu_s_per_million": round(cpu / n * 1e6, 1)}


def bench_limit(settings: Settings, n: int, batch: int) -> dict:
    """The database's own ceiling: rows pre-formatted in memory, COPY'd straight into an events-shaped
    table (its unique index included), one transaction per `batch` rows, on one connection."""
    events = synthetic_events(n, seed=903)
    chunks = ["".join(e.copy_row() for e in events[i:i + batch]) for i in range(0, n, batch)]
    del events
    db = Database.get(settings.replace(events_table=f"bench_limit_{uuid.uuid4().hex[:8]}"))
    db.ensure_schema()
    conn = psycopg2.connect(settings.dsn())
    meter = stack_meter()
    before = meter.snapshot()
    start = time.perf_counter()
    for chunk in chunks:
        with conn.cursor() as cur:
            cur.copy_expert(f'COPY "{db.tables.name}" ({COLUMN_LIST.as_string(conn)}) FROM STDIN', io.StringIO(chunk))
        conn.commit()
    seconds = time.perf_counter() - start
    after = meter.snapshot()
    conn.close()
    return {"rows_per_s": round(n / seconds), "seconds": round(seconds, 2), **CpuMeter.figures(before, after, n)}


def prefill(db: Database, rows: int) -> float:
    """Fill `db`'s events table with `rows` plausible events, generated inside PostgreSQL (ids that no
    synthetic flow uses); returns the seconds it took."""
    start = time.perf_counter()
    step = 1_000_000
    for first in range(0, rows, step):
        last = min(first + step, rows) - 1
        db.run(lambda cur, a=first, b=last: cur.execute(sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT 'synthetic', 'pre-item-' || (i / 7), 'pre-' || i, 'bugs', 'bug_message', "
            "'user' || (i %% 200), ts, date_trunc('week', ts)::date, 'UTC', ts, "
            "jsonb_build_object('title', 'Prefilled item ' || (i / 7) || ': something is not quite right', "
            "'status', 'New', 'importance', 'Low', 'tags', jsonb_build_array('synthetic', 'area-' || (i %% 12)), "
            "'web_link', 'https://example.invalid/items/' || (i / 7)), "
            "jsonb_build_object('old_value', NULL, 'new_value', 'Triaged', 'subject', 'Re: item ' || (i / 7)), "
            "jsonb_build_object('message_length', i %% 4000, 'heat', i %% 500, 'users_affected', i %% 50) "
            "FROM generate_series(%s::bigint, %s::bigint) AS i, "
            "LATERAL (SELECT timestamp '2024-01-01' + (i %% 31622400) * interval '1 second' AS ts) AS t").format(
            t=db.tables.events, cols=COLUMN_LIST), (a, b)), what="prefilling")
    return time.perf_counter() - start


def bench_full_table(settings: Settings, rows: int, n: int, batch: int) -> dict:
    """The loader into an events table already holding `rows` rows, beside the same load into an empty one."""
    events = synthetic_events(n, seed=904)
    figures = {}
    for name, size in (("empty", 0), ("full", rows)):
        db = Database.get(settings.replace(events_table=f"bench_{name}_{uuid.uuid4().hex[:8]}"))
        db.ensure_schema()
        if size:
            print(f"  prefilling {size:,} rows ...", flush=True)
            figures["prefill_s"] = round(prefill(db, size), 1)
        settle(settings)  # vacuumed and analysed, as autovacuum keeps a table that holds that many rows
        meter = stack_meter()
        before = meter.snapshot()
        start = time.perf_counter()
        for i in range(0, n, batch):
            Events(db).insert(events[i:i + batch])
        seconds = time.perf_counter() - start
        figures[name] = {"rows_per_s": round(n / seconds), **CpuMeter.figures(before, meter.snapshot(), n)}
    figures["prefilled_rows"] = rows
    figures["ratio"] = round(figures["full"]["rows_per_s"] / figures["empty"]["rows_per_s"], 3)
    return figures


def synthetic_events(n: int, seed: int):
    from sources.synthetic.flows.events import record

    events, _ = transform(record(seed, 0.0, i) for i in range(n))
    return events


def bench_modes(settings: Settings, n: int, batch: int) -> dict:
    """The load modes, each timed over `n` events in pages of `batch`, with PostgreSQL's CPU."""
    import dataclasses

    events = synthetic_events(n, seed=905)
    edited = [dataclasses.replace(e, event_properties={**e.event_properties, "edited": True}, _json=None)
              for e in events]
    for e in edited:  # encoded once, as the transform encodes every event it makes (not timed)
        e.json_columns()
    figures = {}

    def timed(name: str, db: Database, rows: list, mode: str) -> None:
        settle(settings)
        meter = stack_meter()
        before = meter.snapshot()
        start = time.perf_counter()
        for i in range(0, n, batch):
            Events(db).insert(rows[i:i + batch], mode=mode)
        seconds = time.perf_counter() - start
        cpu = CpuMeter.figures(before, meter.snapshot(), n)
        figures[name] = {"rows_per_s": round(n / seconds),
                         "postgres_cpu_s_per_million": round(cpu["cpu_s_by_process"].get("postgres", 0) * 1e6 / n, 1),
                         "cpu_s_per_million": cpu["cpu_s_per_million"]}

    for mode in ("insert", "upsert", "history"):
        db = Database.get(settings.replace(events_table=f"bench_{mode}_{uuid.uuid4().hex[:8]}"))
        db.ensure_schema()
        timed(f"{mode}_empty", db, events, mode)
        timed(f"{mode}_unchanged", db, events, mode)
        if mode != "insert":
            timed(f"{mode}_changed", db, edited, mode)
    for name in ("upsert_unchanged", "history_unchanged"):
        figures[name]["ratio_to_insert_present"] = round(
            figures[name]["rows_per_s"] / figures["insert_unchanged"]["rows_per_s"], 3)
    for name in ("upsert_changed", "history_changed"):
        figures[name]["ratio_to_insert_empty"] = round(
            figures[name]["rows_per_s"] / figures["insert_empty"]["rows_per_s"], 3)
    return figures


def bench_loader(settings: Settings, n: int, batch: int) -> dict:
    events = synthetic_events(n, seed=901)
    db = Database.get(settings.replace(events_table=f"bench_loader_{uuid.uuid4().hex[:8]}"))
    db.ensure_schema()
    start = time.perf_counter()
    for i in range(0, n, batch):
        Events(db).insert(events[i:i + batch])
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
                        f'SELECT {COLUMN_LIST.as_string(conn)} FROM "{table}" WITH NO DATA')
            cur.copy_expert(f"COPY ref_buf ({COLUMN_LIST.as_string(conn)}) FROM STDIN", buf)
            cur.execute(f'INSERT INTO "{table}" ({COLUMN_LIST.as_string(conn)}) '
                        f'SELECT {COLUMN_LIST.as_string(conn)} FROM ref_buf ON CONFLICT (event_id) DO NOTHING')
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
    meter = stack_meter()
    lsn = wal_lsn(settings)
    before = meter.snapshot()
    start = time.perf_counter()
    for page in strategy.pages(query, None, settings):
        events, rejects = transform(page.records)
        Events(db).insert(events)
        if rejects:
            Rejects(db).record(strategy.name, rejects, None)
        peak = max(peak, proc.memory_info().rss)
    seconds = time.perf_counter() - start
    settle(settings)
    after = meter.snapshot()
    return {"events_per_s": round(n / seconds), "seconds": round(seconds, 2), "peak_rss_mib": round(peak / 2**20, 1),
            "max_payload_bytes": 0, "max_history_events": 0, **CpuMeter.figures(before, after, n),
            **wal_figures(settings, lsn, n)}


class WorkerFleet:
    """Worker processes of one kind, with their peak RSS sampled while they run."""

    def __init__(self, settings_env: dict, kind: str, queue: str, count: int, concurrency: int, log_dir: Path):
        env = dict(os.environ, **settings_env)
        env["ETL_TASK_QUEUE" if kind == "etl_worker" else "ETL_STREAMING_TASK_QUEUE"] = queue
        # A Worker Deployment of its own: its first version becomes current, whatever ran before.
        env["WORKER_DEPLOYMENT_NAME"] = queue
        self.logs = [log_dir / f"{queue}-{kind}-{i}.log" for i in range(count)]
        self.procs = []
        for path in self.logs:
            with open(path, "ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", f"workers.{kind}", "--concurrency", str(concurrency)],
                    cwd=ROOT, env=env, stdout=log, stderr=log))
        self.peak = 0

    def check(self) -> None:
        """Fail at once (with the log's tail) when a worker died: a flow would wait for it forever."""
        for proc, path in zip(self.procs, self.logs):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}:\n{path.read_text()[-3000:]}")

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


def flow_fleet(settings: Settings, env: dict, name: str, kind: str, workers: int, concurrency: int,
               **more_env: str) -> tuple[Settings, str, WorkerFleet]:
    """A fresh events table and task queue for one benchmarked flow, and its worker processes:
    (the flow's settings, the queue, the fleet)."""
    table = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    flow_settings = settings.replace(events_table=table)
    Database.get(flow_settings).ensure_schema()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    log_dir = Path(env["ETL_STATE_DIR"]).parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return flow_settings, queue, WorkerFleet(dict(env, EVENTS_TABLE=table, **more_env), kind, queue, workers,
                                             concurrency, log_dir)


async def bench_flow(settings: Settings, env: dict, n: int, streaming: bool, workers: int, concurrency: int,
                     page_size: int, batch_size: int, opts: argparse.Namespace) -> dict:
    from etl.launch.plan import plan_flow, start_flow
    from etl.runtime.client import connect

    flow_settings, queue, fleet = flow_fleet(settings, env, "stream" if streaming else "batch",
                                             "streaming_worker" if streaming else "etl_worker", workers, concurrency)
    try:
        client = await connect(settings)
        await asyncio.sleep(2)  # let the workers connect and poll
        meter = stack_meter([p.pid for p in fleet.procs])
        lsn = wal_lsn(settings)
        before = meter.snapshot()
        fields = ({"chunks_in_flight": workers * concurrency} if streaming else
                  {"batch_size": batch_size, "partitions": opts.partitions or workers * concurrency,
                   "batches_in_flight": opts.batches_in_flight or 2 * workers * concurrency})
        plan = plan_flow(flow_settings, "synthetic-events",
                         {"count": n, "seed": 12 if streaming else 13, "bad_rate": 0.001, "page_size": page_size},
                         streaming=streaming, task_queue=queue, workflow_id=f"bench-{queue}", **fields)
        start = time.perf_counter()
        handle, _ = await start_flow(client, plan)
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            fleet.sample()
            fleet.check()
            await asyncio.wait([result], timeout=0.2)
        seconds = time.perf_counter() - start
        settle(settings)  # the flow's own vacuum and checkpoint, counted in its CPU, not its seconds
        after = meter.snapshot()  # before the workers stop: their shutdown is not the flow's work
        summary = result.result()
        from etl.runtime.history import figures

        hist = await figures(client, plan.workflow_id)
        largest, longest = hist.max_payload_bytes, hist.max_history_events
    finally:
        fleet.stop()
    return {"events_per_s": round(n / seconds), "seconds": round(seconds, 2),
            "peak_rss_mib": round(fleet.peak / 2**20, 1), "max_payload_bytes": largest,
            "max_history_events": longest, "loaded": summary.loaded, "rejected": summary.rejected,
            "runs": summary.runs, **CpuMeter.figures(before, after, n), **wal_figures(settings, lsn, n)}


def run_parts(results: dict, parts: list[str], opts: argparse.Namespace, settings: Settings, env: dict) -> None:
    if "limit" in parts:
        print(f"limit: {opts.loader_events:,} pre-formatted rows COPY'd straight in ...", flush=True)
        results["limit"] = bench_limit(settings, opts.loader_events, 10_000)
    if "full" in parts and opts.prefill:
        print(f"full table: {opts.loader_events:,} events into {opts.prefill:,} rows and into none ...", flush=True)
        results["full"] = bench_full_table(settings, opts.prefill, opts.loader_events, 10_000)
    if "loader" in parts:
        print(f"loader: {opts.loader_events:,} events ...", flush=True)
        results["loader"] = bench_loader(settings, opts.loader_events, 10_000)
    if "modes" in parts:
        print(f"load modes: {opts.loader_events:,} events each way ...", flush=True)
        results["modes"] = bench_modes(settings, opts.loader_events, 10_000)
    if "replay" in parts:
        print(f"replay: github-issues from the fixture and from the archive on {opts.workers} worker process(es) ...",
              flush=True)
        results["replay"] = asyncio.run(bench_replay(settings, env, opts.workers, flow_fleet))
    if not {"plain", "batch", "streaming"} & set(parts):
        return
    settle(settings)  # what the parts above left; from here on each flow settles after itself
    rounds = []
    for n in range(opts.rounds):
        if opts.rounds > 1:
            print(f"round {n + 1} of {opts.rounds}:", flush=True)
        got = {}
        print(f"plain loop: {opts.events:,} events ...", flush=True)  # the flows' ratios need it
        got["plain"] = bench_plain(settings, opts.events, opts.page_size)
        for kind in ("batch", "streaming"):
            if kind in parts:
                print(f"{kind}: {opts.events:,} events on {opts.workers} worker process(es) ...", flush=True)
                got[kind] = asyncio.run(bench_flow(settings, env, opts.events, kind == "streaming", opts.workers,
                                                   opts.concurrency, opts.page_size, opts.batch_size, opts))
        for figures in got.values():  # each flow against the plain loop of its own round
            figures["ratio"] = round(figures["events_per_s"] / got["plain"]["events_per_s"], 3)
        rounds.append(got)
    for kind in rounds[0]:
        results[kind] = median_round([got[kind] for got in rounds]) if len(rounds) > 1 else rounds[0][kind]


def median_round(figures: list[dict]) -> dict:
    """One flow over several rounds: the figures of its round with the median events/s, with the
    ratio and the CPU seconds per million replaced by their medians over all rounds, and each
    round's own three figures under `rounds`."""
    chosen = dict(sorted(figures, key=lambda f: f["events_per_s"])[len(figures) // 2])
    for key in ("ratio", "cpu_s_per_million"):
        chosen[key] = round(statistics.median(f[key] for f in figures), 3 if key == "ratio" else 1)
    chosen["rounds"] = [{key: f[key] for key in ("events_per_s", "ratio", "cpu_s_per_million")} for f in figures]
    return chosen


PARTS = ["transform", "limit", "loader", "modes", "full", "replay", "plain", "batch", "streaming"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events per flow (default 200,000)")
    parser.add_argument("--loader-events", type=int, default=100_000, help="events for the loader figures")
    parser.add_argument("--page-size", type=int, default=2_000, help="records per source page")
    parser.add_argument("--batch-size", type=int, default=50_000,
                        help="ETLFlow records per batch (default 50,000: 25 pages, as a streaming chunk call)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per flow (default 2: the cores)")
    parser.add_argument("--concurrency", type=int, default=1, help="activities per worker process")
    parser.add_argument("--partitions", type=int, default=0,
                        help="ETLFlow: parts extracted in parallel (default: the workers' activity slots)")
    parser.add_argument("--batches-in-flight", type=int, default=0,
                        help="ETLFlow: batches between extract and load at once (default: twice the slots)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run plain, batch and streaming this many times, one after the other, and report "
                             "medians (ratios against the plain loop of the same round): this machine's speed "
                             "drifts, and interleaved rounds let it drift under every flow alike (default 1)")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--prefill", type=int, default=0, metavar="ROWS",
                        help="also load --loader-events events into an events table already holding ROWS rows "
                             "(made inside PostgreSQL), beside an empty one: the 'full' row (e.g. 10000000)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    opts = parser.parse_args(argv)
    parts = opts.only or PARTS
    if opts.events < 1:
        parser.error(f"--events {opts.events}: give at least 1")
    if not 1 <= opts.rounds <= 50:
        parser.error(f"--rounds {opts.rounds}: give 1 to 50")

    # This process runs the transform, loader and plain rows: with the workers' collector settings,
    # so every row measures the same Python (etl/runtime/gc_policy.py).
    from etl.runtime import gc_policy

    gc_policy.tune()
    root = Path(tempfile.mkdtemp(prefix="etl-bench-"))
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()]}}
    if "transform" in parts:  # first, before any server runs beside it
        print(f"transform: {opts.loader_events:,} records in memory ...", flush=True)
        results["transform"] = bench_transform(opts.loader_events)
    print(f"starting a private stack under {root} ...", flush=True)
    try:
        # Durable settings (fsync on), as a user's database would run.
        with private_stack(root, fast=False) as (pg, temporal, env):
            STACK_PIDS.update(postgres=pg.pid(), temporal=temporal.pid())
            # As a production server would be tuned for bulk loads: checkpoints by time, not every 1 GB of
            # WAL (the default), so a 10,000,000-event run does not pay full-page writes after each one.
            pg.psql("ALTER SYSTEM SET max_wal_size = '16GB'")
            pg.psql("ALTER SYSTEM SET checkpoint_timeout = '15min'")
            pg.psql("ALTER SYSTEM SET autovacuum = off")  # each flow vacuums after its run: see `settle`
            pg.psql("SELECT pg_reload_conf()")
            settings = settings_from_env(env)
            try:
                run_parts(results, parts, opts, settings, env)
            finally:
                Database.close_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print()
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs, load average before {m['load_before']}, after {m['load_after']}")
    if "transform" in results:
        r = results["transform"]
        print(f"transform  {r['events_per_s']:>9,} events/s  (transform() + copy_row(), in memory; "
              f"{r['cpu_s_per_million']} CPU s per million)")
    if "limit" in results:
        r = results["limit"]
        print(f"limit      {r['rows_per_s']:>9,} rows/s    (pre-formatted rows COPY'd straight into an events-shaped "
              f"table; {r['cpu_s_per_million']} CPU s per million)")
    if "full" in results:
        r = results["full"]
        print(f"full table {r['full']['rows_per_s']:>9,} rows/s    into {r['prefilled_rows']:,} rows, beside "
              f"{r['empty']['rows_per_s']:,} rows/s into an empty table: ratio {r['ratio']:.2f} "
              f"(prefill took {r['prefill_s']}s)")
    if "loader" in results:
        r = results["loader"]
        print(f"loader     {r['rows_per_s']:>9,} rows/s   reference (COPY temp + INSERT ON CONFLICT) "
              f"{r['reference_rows_per_s']:,} rows/s   ratio {r['ratio']:.2f}")
    if "modes" in results:
        print(f"{'load mode':18} {'rows/s':>9} {'ratio':>6} {'PG CPU s/M':>10} {'CPU s/M':>8}")
        for name, r in results["modes"].items():
            ratio = r.get("ratio_to_insert_present", r.get("ratio_to_insert_empty"))
            print(f"{name:18} {r['rows_per_s']:>9,} {ratio if ratio is not None else '-':>6} "
                  f"{r['postgres_cpu_s_per_million']:>10} {r['cpu_s_per_million']:>8}")
    if "replay" in results:
        r = results["replay"]
        print(f"replay     {r['replay']['records_per_s']:>9,} records/s from the archive ({r['replay']['from_archive']:,} "
              f"answers), {r['fixture']['records_per_s']:,} from the fixture API, {r['archive']['records_per_s']:,} "
              f"archiving: ratio {r['ratio']:.2f} (StreamingETLFlow, {r['replay']['records']:,} records; medians of "
              f"{r['rounds']} runs)")
    if any(kind in results for kind in ("plain", "batch", "streaming")):
        print(f"{'flow':10} {'events/s':>9} {'ratio':>6} {'seconds':>8} {'peak RSS MiB':>13} {'max payload B':>14} "
              f"{'max history':>12} {'CPU s/M':>8} {'WAL B/ev':>8}  CPU s by process")
    for kind in ("plain", "batch", "streaming"):
        if kind in results:
            r = results[kind]
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
            by = ", ".join(f"{k} {v}" for k, v in r["cpu_s_by_process"].items() if v)
            by += f"; others on the machine {r['other_cpu_s']}"
            print(f"{kind:10} {r['events_per_s']:>9,} {ratio:>6} {r['seconds']:>8} {r['peak_rss_mib']:>13} "
                  f"{r['max_payload_bytes']:>14,} {r['max_history_events']:>12,} {r['cpu_s_per_million']:>8} {r['wal_bytes_per_event']:>8}  {by}")
    if opts.rounds > 1:
        print(f"medians of {opts.rounds} rounds (the row shows the round with the median events/s; ratio and "
              "CPU s/M are medians); each round's events/s, ratio, CPU s/M:")
        for kind in ("plain", "batch", "streaming"):
            if kind in results:
                print(f"  {kind:10} " + "   ".join(f"{f['events_per_s']:,} {f['ratio']:.2f} {f['cpu_s_per_million']}"
                                                  for f in results[kind]["rounds"]))
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    from etl.runtime.exit import exit_process

    exit_process(main())  # not sys.exit: see etl/runtime/exit.py (the SDK's threads can crash finalisation)
