#!/usr/bin/env python3
"""Temporal Schedules for recurring flows.

    python scripts/schedule.py create ID (--strategy S [--arg k=v ...] | --flows FILE) (--cron EXPR | --interval 1h)
    python scripts/schedule.py list | describe ID | delete ID | trigger ID | pause ID | unpause ID

Every tick starts a ScheduledFlow that runs the flows (as one fan-out) over an incremental
window: from the end of the previous successful run's window to this run's scheduled time,
so nothing is missed or fetched twice. The first window starts at --since (default: when the
schedule is created). The window goes into each flow's window arguments, found by name
(Launchpad's data_date_start/data_date_end, or since/until) or given with --window-args;
date arguments get both ends floored to dates, so an hourly schedule fetches each day once,
in the run that crosses midnight. A flow without window arguments runs as given every time.
A run in which any flow fails fails, and the next run covers its window again. A run whose
every window is empty runs nothing: `describe` lists it as `skipped`. Each run's window is in
its memo (`window`), and each flow's real window in the flow's memo, EtlQuery and summary.

Overlap (a tick while the previous run still runs), --overlap: skip (default: the tick is
dropped; the next window starts where the last successful one ended, so nothing is lost),
buffer_one, buffer_all, cancel_other, terminate_other. allow_all is refused: concurrent runs
could not chain their windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from etl.core.errors import EtlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a schedule for one flow or a file of flows")
    create.add_argument("id", help="the schedule's name, e.g. lp-team-daily")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--strategy", help="one flow: its extract strategy (see run_flow.py --list)")
    what.add_argument("--flows", metavar="FILE", help="a JSON or YAML list of flows, as for run_queue.py")
    create.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="with --strategy: a query argument")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression, e.g. '0 3 * * *' (UTC)")
    when.add_argument("--interval", help="every 30s, 5m, 1h, 1h30m, 1d ...")
    create.add_argument("--since", help="ISO date or time the first window starts at (default: now)")
    create.add_argument("--window-args", metavar="START,END", help="query arguments that take the window")
    create.add_argument("--overlap", default="skip", help="skip (default), buffer_one, buffer_all, cancel_other, terminate_other")
    create.add_argument("--streaming", action="store_true", help="run the flows as StreamingETLFlow")
    create.add_argument("--load-mode", default="insert", choices=("insert", "upsert", "history"),
                        help="what a load does with an event already stored (default insert; see README, Load modes)")
    create.add_argument("--archive", action="store_true",
                        help="keep every answer the sources give in the source archive (see scripts/archive.py)")
    create.add_argument("--concurrency", type=int, default=8, metavar="N", help="flows running at once per run (default 8)")
    create.add_argument("--task-queue", help="task queue of the flows and the scheduled run (default ETL_TASK_QUEUE)")
    create.add_argument("--paused", action="store_true", help="create it paused (trigger still works)")
    create.add_argument("--note", help="a note shown with the schedule")
    listing = sub.add_parser("list", help="every schedule in the namespace")
    listing.add_argument("--json", action="store_true")
    describe = sub.add_parser("describe", help="a schedule, its next times and its recent runs with their windows")
    describe.add_argument("id")
    describe.add_argument("--json", action="store_true")
    for name, text in (("delete", "delete a schedule (its past runs stay in history)"),
                       ("trigger", "run it now, as if a tick came"), ("pause", "stop its ticks"),
                       ("unpause", "resume its ticks")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("id")
        if name in ("pause", "unpause"):
            cmd.add_argument("--note", help="why (shown with the schedule, after the note given at creation)")
    return parser



def draft(settings, opts):
    """The schedule `create` asks for, validated before anything talks to Temporal."""
    from etl.launch import cli
    from etl.launch.flow_file import FlowSpec, load_flow_file
    from etl.launch.schedules import draft_schedule

    specs = load_flow_file(opts.flows) if opts.flows else [FlowSpec(opts.strategy, cli.parse_pairs(opts.arg))]
    return draft_schedule(settings, opts.id, specs, cron=opts.cron, interval=opts.interval, since=opts.since,
                          window_args=opts.window_args, overlap=opts.overlap, streaming=opts.streaming,
                          concurrency=opts.concurrency, task_queue=opts.task_queue, paused=opts.paused,
                          note=opts.note, source=opts.flows, load_mode=opts.load_mode, archive=opts.archive)


async def create(client, plan) -> int:
    from temporalio.client import ScheduleAlreadyRunningError

    try:
        await client.create_schedule(plan.schedule_id, plan.schedule, memo=plan.memo,
                                     search_attributes=plan.search_attributes())
    except ScheduleAlreadyRunningError:
        print(f"error: a schedule named {plan.schedule_id!r} already exists; delete it first or choose another name",
              file=sys.stderr)
        return 2
    print(plan.describe())
    return 0


def show(data, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, default=str))
        return
    if isinstance(data, list):
        if not data:
            print("no schedules")
        for row in data:
            print(f"{row['id']:32} {row['workflow']:14} {row['when']:22} "
                  f"{'paused' if row['paused'] else 'active':7} next {row['next_run'] or '-'}")
        return
    for key, value in data.items():
        if key == "recent_runs":
            print("recent_runs:")
            for run in value:
                window = " .. ".join(run.get("window") or []) or "-"
                n = run.get("skipped_flows") or 0
                skipped = f"  {n} flow{'' if n == 1 else 's'} skipped (empty window)" if n else ""
                print(f"  {run['workflow_id']}  {run['status']:10} window {window}{skipped}"
                      f"{'  ' + run['error'] if run.get('error') else ''}")
        else:
            print(f"{key:20} {value}")


async def run(opts) -> int:
    from temporalio.service import RPCError, RPCStatusCode

    from etl.core.settings import load_settings
    from etl.launch.schedule_view import describe_schedule, list_schedules, pause_note
    from etl.runtime.client import connect

    settings = load_settings()
    plan = draft(settings, opts) if opts.command == "create" else None
    client = await connect(settings)
    try:
        if plan is not None:
            return await create(client, plan)
        if opts.command == "list":
            show(await list_schedules(client), opts.json)
            return 0
        if opts.command == "describe":
            show(await describe_schedule(client, opts.id), opts.json)
            return 0
        handle = client.get_schedule_handle(opts.id)
        if opts.command == "delete":
            await handle.delete()
        elif opts.command == "trigger":
            await handle.trigger()
        elif opts.command in ("pause", "unpause"):
            # Temporal replaces the schedule's note with the pause note: keep the creation note in it.
            created = (await (await handle.describe()).memo()).get("note")
            note = pause_note(created, f"{opts.command}d", opts.note)
            await (handle.pause(note=note) if opts.command == "pause" else handle.unpause(note=note))
        print(f"{opts.command}{'d' if opts.command.endswith('e') else 'ed'} schedule {opts.id}")
        return 0
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and getattr(opts, "id", None):
            print(f"error: no schedule named {opts.id!r} (see `schedule.py list`)", file=sys.stderr)
        else:
            print(f"error: Temporal at {settings.temporal_host} refused: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(opts))
    except (EtlError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from etl.runtime.exit import run_command

    run_command(main)  # see etl/runtime/exit.py: never a crash on the way out, Temporal away is one line
