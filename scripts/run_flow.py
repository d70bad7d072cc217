#!/usr/bin/env python3
"""Launch one flow.

    python scripts/run_flow.py STRATEGY [--arg key=value ...] [--streaming] [--wait] [--json]
                               [--archive | --replay [--as-of TIME]]
    python scripts/run_flow.py --list

The query type comes from the strategy (`launchpad-bugs` takes a `launchpad` query), and the
arguments are checked before anything starts. The workflow id is derived from the strategy
and the query, so the same query always gets the same id:
  - while a flow with that id is running, launching again attaches to it (nothing is doubled);
  - once it has finished, launching again starts a new run under the same id; it re-extracts,
    and loads insert only events not already in the table (usually none).

`--archive` keeps every answer the source gives in the source archive; `--replay` runs the same
query from the archive with no network (a replay has an id of its own, ending in its hash as the
others do, with `-replay` in it). See scripts/archive.py for what the archive holds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from etl.core.errors import EtlError


def list_strategies() -> None:
    import dataclasses as dc

    from etl.core.extract import ExtractStrategy
    from etl.core.query import QueryFactory

    for strategy in ExtractStrategy.all():
        qcls = QueryFactory.get(strategy.query_type)
        fields = []
        for f in dc.fields(qcls):
            required = f.default is dc.MISSING and f.default_factory is dc.MISSING
            fields.append(f.name if required else f"[{f.name}={f.default!r}]" if f.default is not dc.MISSING
                          else f"[{f.name}]")
        print(f"{strategy.name:32} {strategy.query_type:12} {' '.join(fields)}")
    from etl.core.discovery import failures

    for failure in failures():  # the listing above is every source that did load
        print(f"error: {failure}", file=sys.stderr)


async def launch(opts: argparse.Namespace) -> int:
    from tqdm import tqdm

    from etl.core.settings import load_settings
    from etl.launch.cli import parse_pairs
    from etl.launch.plan import plan_flow, start_flow, ui_link
    from etl.runtime.client import connect

    settings = load_settings()
    fields = {}
    if opts.batch_size:
        fields["batch_size"] = opts.batch_size
    if opts.chunks_in_flight:
        fields["chunks_in_flight"] = opts.chunks_in_flight
    if opts.load_mode:
        fields["load_mode"] = opts.load_mode
    plan = plan_flow(settings, opts.strategy, parse_pairs(opts.arg), streaming=opts.streaming,
                     task_queue=opts.task_queue, archive=opts.archive, replay=opts.replay, as_of=opts.as_of, **fields)
    client = await connect(settings)
    handle, started = await start_flow(client, plan)
    link = ui_link(settings, plan.workflow_id)
    if not opts.json:
        verb = "started" if started else "already running; attached to"
        print(f"{verb} {plan.workflow_name} {plan.workflow_id} on task queue {plan.task_queue!r}")
        print(f"UI: {link}")
    if not opts.wait:
        if opts.json:
            print(json.dumps({"workflow_id": plan.workflow_id, "started": started, "ui_url": link}))
        return 0

    result_task = asyncio.ensure_future(handle.result())
    with tqdm(total=None, unit="event", desc=opts.strategy, disable=opts.json, dynamic_ncols=True) as bar:
        while not result_task.done():
            try:
                progress = await handle.query("progress")
                if progress.get("expected") and bar.total is None:
                    bar.total = progress["expected"]
                bar.n = progress["extracted"]
                bar.set_postfix(loaded=progress["loaded"], rejected=progress["rejected"],
                                stage=progress["stage"][:28])
                bar.refresh()
            except Exception:  # noqa: BLE001 - the flow may be between runs (continue-as-new)
                pass
            await asyncio.wait([result_task], timeout=0.5)
    try:
        summary = dataclasses.asdict(result_task.result())
    except Exception as exc:  # noqa: BLE001 - report the flow's failure as the user sees it in the UI
        from etl.workflows.failure_text import root_message

        message = root_message(exc)
        if opts.json:
            print(json.dumps({"workflow_id": plan.workflow_id, "error": message}))
        else:
            print(f"error: flow {plan.workflow_id} failed: {message}", file=sys.stderr)
        return 1
    if opts.json:
        print(json.dumps({"workflow_id": plan.workflow_id, "summary": summary}))
    else:
        print(f"extracted {summary['extracted']:,} · loaded {summary['loaded']:,} · rejected "
              f"{summary['rejected']:,} · updated {summary['updated']:,} · unchanged {summary['unchanged']:,} · "
              f"{summary['batches']} batches · {summary['duration_s']:.1f}s"
              + (f" · {summary['from_archive']:,} answers from the archive" if opts.replay else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("strategy", nargs="?", help="extract strategy, e.g. launchpad-bugs (see --list)")
    parser.add_argument("--list", action="store_true", help="list every strategy, its query type and fields")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a query argument")
    parser.add_argument("--task-queue", help="task queue (default ETL_TASK_QUEUE, or ETL_STREAMING_TASK_QUEUE)")
    parser.add_argument("--streaming", action="store_true", help="run StreamingETLFlow instead of ETLFlow")
    parser.add_argument("--wait", action="store_true", help="show progress and print the summary")
    parser.add_argument("--json", action="store_true", help="print JSON: {workflow_id, summary}")
    parser.add_argument("--batch-size", type=int, help="ETLFlow: records per batch (default 5000)")
    parser.add_argument("--chunks-in-flight", type=int, help="StreamingETLFlow: parallel chunks (default 2)")
    parser.add_argument("--load-mode", choices=("insert", "upsert", "history"),
                        help="what the load does with an event already stored: insert (default) skips it, upsert "
                             "replaces it when it changed, history also keeps the replaced version")
    parser.add_argument("--archive", action="store_true",
                        help="keep every answer the source gives in the source archive (see scripts/archive.py)")
    parser.add_argument("--replay", action="store_true",
                        help="read the source archive instead of the source (no network); a request it cannot "
                             "answer fails the flow")
    parser.add_argument("--as-of", metavar="TIME", help="with --replay: the newest answers archived at or before "
                                                        "TIME (ISO 8601, e.g. 2024-06-01)")
    opts = parser.parse_args(argv)
    try:
        if opts.list:
            list_strategies()
            return 0
        if not opts.strategy:
            parser.error("give a STRATEGY (see --list)")
        return asyncio.run(launch(opts))
    except (EtlError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a refusal from Temporal or the database, never a traceback
        print(f"error: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from etl.runtime.exit import run_command

    run_command(main)  # see etl/runtime/exit.py: never a crash on the way out, Temporal away is one line
