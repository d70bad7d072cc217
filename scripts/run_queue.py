#!/usr/bin/env python3
"""Launch every flow in a file, or one flow per member of a team and strategy.

    python scripts/run_queue.py FILE [--concurrency N] [--streaming] [--json]
    python scripts/run_queue.py --team TEAM [--source launchpad] --from 2024-01-01 --to 2024-02-01 [--strategies a,b]
    python scripts/run_queue.py FILE --durable [--no-wait]

FILE is JSON or YAML: a list of {strategy: NAME, args: {...}} (optionally `streaming: true`),
e.g. (README, "The flow file"):

    - strategy: launchpad-bugs
      args: {member: alice, data_date_start: 2024-01-01, data_date_end: 2024-02-01}
    - strategy: launchpad-questions
      args: {member: alice, data_date_start: 2024-01-01, data_date_end: 2024-02-01}
      streaming: true

Every flow is validated before any starts. A progress bar counts finished flows; the end is
a table (status, events loaded, updated and unchanged (already in the table as they are), rejects,
duration per flow, and totals). The exit status is 1 when any flow failed (they are listed),
2 when the input is wrong.

Running it again is safe. Each flow's workflow id is derived from its strategy and its
arguments (its dates included), so the same file names the same flows:
  - a flow that already completed is NOT started again: its recorded result is reused and
    shown as "already completed";
  - a flow still running is attached to, not doubled ("attached");
  - a flow whose last run failed, was cancelled or terminated is started again ("restarted");
  - a flow never seen is started ("started").
When nothing new was started it says so. A different window means different arguments, so a
new id, and those flows run.

--durable submits ONE FanOutFlow workflow that starts every flow as its child, so the launch
goes on if this machine goes away (Ctrl-C here stops only the waiting). Its id is derived from
the set of flows: the same file attaches to the running fan-out, or reuses its completed result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from etl.core.errors import EtlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", help="JSON or YAML list of flows")
    parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="flows running at once (default 8)")
    parser.add_argument("--streaming", action="store_true", help="run flows as StreamingETLFlow unless a flow says otherwise")
    parser.add_argument("--task-queue", help="task queue for every flow (default ETL_TASK_QUEUE / ETL_STREAMING_TASK_QUEUE)")
    parser.add_argument("--load-mode", default="insert", choices=("insert", "upsert", "history"),
                        help="load mode of every flow unless a flow says otherwise (default insert)")
    parser.add_argument("--durable", action="store_true", help="submit one FanOutFlow that runs every flow as a child")
    parser.add_argument("--no-wait", action="store_true", help="with --durable: submit and return at once")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the bar and table")
    team = parser.add_argument_group("a team instead of FILE (sources whose people come in teams, e.g. launchpad)")
    team.add_argument("--team", metavar="TEAM", help="one flow per member of TEAM and per strategy")
    team.add_argument("--source", default="launchpad", help="the source the team belongs to (default launchpad)")
    team.add_argument("--launchpad-team", dest="team", metavar="TEAM", help=argparse.SUPPRESS)  # the older spelling
    team.add_argument("--strategies", help="comma-separated strategies (default: every strategy of --source)")
    team.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="window start, inclusive (default FROM_DATE)")
    team.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="window end, exclusive (default TO_DATE)")
    team.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                      help="another query argument for every flow, e.g. service_root=staging (repeatable)")
    return parser


def team_specs(opts: argparse.Namespace, settings) -> list:
    from etl.core.errors import ConfigError
    from etl.launch.teams import group_query_type, source_strategies, team_flow_specs

    date_from = opts.date_from or (settings.from_date.isoformat() if settings.from_date else None)
    date_to = opts.date_to or (settings.to_date.isoformat() if settings.to_date else None)
    if not date_from or not date_to:
        raise ConfigError("--from" if not date_from else "--to", None,
                          "a date (YYYY-MM-DD) with --team, or FROM_DATE and TO_DATE in the settings")
    if opts.strategies:
        strategies = [s.strip() for s in opts.strategies.split(",") if s.strip()]
        qcls = group_query_type(strategies)
    else:
        strategies = source_strategies(opts.source)
        qcls = group_query_type(strategies, "--source", opts.source)
    from etl.launch.cli import parse_pairs

    extra = parse_pairs(opts.arg)
    members = qcls.expand_group(opts.team, settings, extra)
    if not members:
        raise ConfigError("--team", opts.team, "a team with members; it has none")
    return team_flow_specs(qcls, members, strategies, date_from, date_to, extra)


async def launch(opts: argparse.Namespace) -> int:
    from tqdm import tqdm

    from etl.core.settings import load_settings
    from etl.launch import flow_file as queue
    from etl.launch import runner
    from etl.runtime.client import connect

    settings = load_settings()
    if opts.team:
        specs, source = team_specs(opts, settings), f"team {opts.team}"
    else:
        specs, source = queue.load_flow_file(opts.file), opts.file
    plans = queue.plan_all(settings, specs, streaming=opts.streaming, task_queue=opts.task_queue, source=source,
                           load_mode=opts.load_mode)
    client = await connect(settings)
    if opts.durable:
        return await launch_durable(client, settings, plans, opts, source)

    failed, began = 0, time.monotonic()
    with tqdm(total=len(plans), unit="flow", desc="flows", disable=opts.json, dynamic_ncols=True) as bar:
        def done(outcome) -> None:
            nonlocal failed
            failed += outcome.status != "completed"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

        outcomes = await runner.run_flows(client, plans, opts.concurrency, on_done=done)
    return report(outcomes, opts.json, elapsed_s=time.monotonic() - began)


async def launch_durable(client, settings, plans: list, opts: argparse.Namespace, source: str) -> int:
    from temporalio.client import WorkflowFailureError
    from tqdm import tqdm

    from etl.launch.fanout import plan_fanout, submit_fanout, watch_fanout
    from etl.launch.plan import ui_link
    from etl.launch.report import plural
    from etl.workflows.failure_text import root_message

    task_queue = opts.task_queue or settings.task_queue
    plan = plan_fanout(client, plans, concurrency=opts.concurrency, task_queue=task_queue, source=source)
    handle, note = await submit_fanout(client, plan)
    line = f"FanOutFlow {plan.workflow_id}: {note}; {plural(len(plans), 'flow')} on task queue {task_queue!r}"
    if note not in ("attached", "already completed"):  # otherwise it runs with the concurrency it started with
        line += f", {opts.concurrency} at a time"
    if not opts.json:
        print(line, flush=True)
        print(f"UI: {ui_link(settings, plan.workflow_id)}", flush=True)
    if opts.no_wait:
        print(json.dumps({"workflow_id": plan.workflow_id, "note": note}) if opts.json else
              "it runs without this launcher; run the same command again to attach and see its summary")
        return 0
    with tqdm(total=len(plans), unit="flow", desc="flows", disable=opts.json, dynamic_ncols=True) as bar:
        def progress(p) -> None:
            bar.n = p.completed + p.failed
            bar.set_postfix(running=p.running, failed=p.failed)

        try:
            summary = await watch_fanout(handle, progress)
        except WorkflowFailureError as exc:
            print(f"error: fan-out {plan.workflow_id} failed: {root_message(exc)}", file=sys.stderr)
            return 1
        bar.n = len(summary.children)
        bar.refresh()
    # The note line was printed above, before the bar: the table follows without repeating it.
    return report(summary.children, opts.json, note=line, elapsed_s=summary.duration_s, note_shown=True)


def report(outcomes: list, as_json: bool, note: str | None = None, elapsed_s: float | None = None,
           note_shown: bool = False) -> int:
    from etl.launch import report as queue_report

    failed = any(o.status != "completed" for o in outcomes)
    if as_json:
        data = queue_report.as_json(outcomes, elapsed_s)
        if note:
            data["note"] = note
        print(json.dumps(data))
    else:
        if not note_shown:
            print(note or queue_report.launch_note(outcomes))
        print(queue_report.summary_table(outcomes, elapsed_s))
        if failed:
            print(queue_report.failures(outcomes), file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if bool(opts.file) == bool(opts.team):
        parser.error("give a FILE of flows or --team TEAM (one of them)")
    if opts.concurrency < 1:
        parser.error(f"--concurrency {opts.concurrency}: give 1 or more")
    if opts.no_wait and not opts.durable:
        parser.error("--no-wait goes with --durable (without it the launcher is what waits)")
    from temporalio.service import RPCError

    try:
        return asyncio.run(launch(opts))
    except (EtlError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RPCError as exc:  # e.g. the search attributes are not registered on that server
        print(f"error: Temporal refused: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from etl.runtime.exit import run_command

    run_command(main)  # see etl/runtime/exit.py: never a crash on the way out, Temporal away is one line
