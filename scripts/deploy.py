#!/usr/bin/env python3
"""Deploy new worker code without breaking running flows (Temporal Worker Versioning).

    python scripts/deploy.py status [--json]             versions, which is current, what still runs on each
    python scripts/deploy.py rollout [--workers N] [--build-id ID] [--ramp PCT]
                                                         on the dev stack: start the new version's workers,
                                                         make it current (or ramp it), watch the old one
                                                         drain, then stop the old workers
    python scripts/deploy.py rollback [BUILD_ID]         BUILD_ID current, no ramp: the bad build takes no new
                                                         flows and drains (default: the current version when a
                                                         ramp is on, else the one current before it)
    python scripts/deploy.py set-current BUILD_ID        make a version current (a ramp of another one ends)
    python scripts/deploy.py ramp BUILD_ID PCT           send PCT% of new flows to BUILD_ID (0 ends the ramp)
    python scripts/deploy.py drain BUILD_ID [--stop-local-workers]
                                                         wait until no flow runs on BUILD_ID; then its
                                                         workers may stop (on the dev stack: stop them)

Every worker is a version of the deployment WORKER_DEPLOYMENT_NAME (default `etl`); its build id
is WORKER_BUILD_ID or, by default, derived from the code (package version + hash of the workflow
and activity code). Flows (ETLFlow, StreamingETLFlow) are pinned: they finish on the version they
started on, so an old version's workers must run until it has drained. Elsewhere than the dev
stack, start the new version's workers yourself (same settings, the new code), then run
`set-current` (or `ramp`), then `drain OLD_BUILD_ID`, then stop the old workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from etl.core.errors import EtlError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/deploy.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="the deployment's versions and what runs on each")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    rollout = sub.add_parser("rollout", help="the whole deploy on the dev stack (dev.py up)")
    rollout.add_argument("--workers", type=int, default=0, metavar="N",
                         help="batch and streaming workers of the new version (default: as many as run now, or 1)")
    rollout.add_argument("--build-id", help="the new version's build id (default: derived from the code)")
    rollout.add_argument("--ramp", type=float, metavar="PCT",
                         help="ramp the new version to PCT%% of new flows instead of making it current, and stop there")
    rollout.add_argument("--keep-old-workers", action="store_true",
                         help="do not stop the old version's workers once it has drained")
    rollback = sub.add_parser("rollback", help="BUILD_ID current with no ramp; the build that took new flows drains")
    rollback.add_argument("build_id", metavar="BUILD_ID", nargs="?",
                          help="the good version (default: the current one when a ramp is on, else the previous one)")
    current = sub.add_parser("set-current", help="make BUILD_ID current (new flows start on it); ends any other ramp")
    current.add_argument("build_id", metavar="BUILD_ID")
    ramp = sub.add_parser("ramp", help="send PCT%% of new flows to BUILD_ID, the rest to the current version")
    ramp.add_argument("build_id", metavar="BUILD_ID")
    ramp.add_argument("percent", type=float, metavar="PCT")
    drain = sub.add_parser("drain", help="wait until BUILD_ID has no running flow; its workers may then stop")
    drain.add_argument("build_id", metavar="BUILD_ID")
    drain.add_argument("--stop-local-workers", action="store_true",
                       help="then stop the dev stack's workers of BUILD_ID (SIGTERM: they finish what they run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "rollout" and args.workers < 0:
        _parser().error(f"--workers {args.workers}: give 1 or more (or leave it out)")
    if args.command == "rollout" and args.ramp is not None and not 0 < args.ramp < 100:
        _parser().error(f"--ramp {args.ramp:g}: give a percentage between 0 and 100 (100 is a plain rollout)")
    from temporalio.service import RPCError

    from etl.core.settings import load_settings
    from etl.runtime.client import unreachable

    try:
        settings = load_settings()
        return asyncio.run(_run(args, settings))
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RPCError as exc:
        gone = unreachable(exc, settings)
        if gone:
            raise gone from None
        print(f"error: Temporal refused: {exc.message[:300]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was undone; `python scripts/deploy.py status` shows where things stand",
              file=sys.stderr)
        return 130


async def _run(args, settings) -> int:
    from etl.runtime.client import connect
    from etl.runtime.versioning import Deployment, check_build_id

    client = await connect(settings)  # TemporalUnreachable names the address and what to do
    deployment = Deployment(client, settings.worker_deployment_name)
    if args.command == "status":
        return await _status(deployment, settings, args.json)
    if args.command == "rollback":
        return await _rollback(deployment, args.build_id and check_build_id(args.build_id))
    if args.command == "set-current":
        await _require_workers(deployment, check_build_id(args.build_id))
        _, ramping, percent = await deployment.routing()
        await deployment.set_current(args.build_id)
        print(f"{args.build_id} is current: new flows start on it; flows pinned to other versions finish there")
        if ramping and ramping != args.build_id and await deployment.end_ramp():
            print(f"the ramp of {ramping} ({percent:g}% of new flows) ended: it takes no new flows and drains")
        return 0
    if args.command == "ramp":
        await _require_workers(deployment, check_build_id(args.build_id))
        await deployment.set_ramp(args.build_id, args.percent)
        print(f"{args.build_id} takes {args.percent:g}% of new flows" if args.percent else
              f"ramp ended: every new flow starts on the current version; {args.build_id} drains")
        return 0
    if args.command == "drain":
        await _drain(deployment, settings, check_build_id(args.build_id), args.stop_local_workers)
        return 0
    return await _rollout(deployment, settings, args)


async def _rollback(deployment, to: str | None) -> int:
    good, bad = await deployment.rollback(to)
    print(f"{good} is current and nothing ramps: every new flow starts on it")
    for build_id in bad:
        print(f"{build_id} takes no new flows; flows pinned to it finish there. When it has drained, stop its "
              f"workers:\n     python scripts/deploy.py drain {build_id} --stop-local-workers   (dev stack)")
    if not bad:
        print("nothing else took new flows: nothing to drain")
    return 0


async def _require_workers(deployment, build_id: str) -> None:
    state = await deployment.describe(build_id)  # DeployError when the server has never seen it
    if not state.task_queues:
        from etl.core.errors import DeployError

        raise DeployError(f"version {build_id!r} has no workers polling: start them first")


async def _status(deployment, settings, as_json: bool) -> int:
    from etl.devstack.local import DevStack
    from etl.devstack.version_workers import running_by_version

    current, ramping, percent = await deployment.routing()
    local = running_by_version(DevStack(settings))
    versions = []
    for build_id in await deployment.build_ids():
        state = await deployment.describe(build_id)
        versions.append({"build_id": build_id, "status": state.status, "drainage": state.drainage,
                         "running_flows": state.running_pinned, "task_queues": state.task_queues,
                         "local_workers": len(local.get(build_id, []))})
    info = {"deployment": deployment.name, "current": current, "ramping": ramping,
            "ramp_percentage": percent, "versions": versions}
    if as_json:
        print(json.dumps(info))
        return 0
    print(f"deployment {deployment.name!r}: current {current or '(none)'}"
          + (f", ramping {ramping} at {percent:g}%" if ramping else ""))
    for v in versions:
        print(f"  {v['build_id']:32} {v['status']:9} running flows: {v['running_flows']:<5} "
              f"local workers: {v['local_workers']:<3} queues: {', '.join(v['task_queues']) or '-'}")
    if not versions:
        print("  no versions yet: start a worker (python scripts/dev.py up --workers 1)")
    return 0


async def _drain(deployment, settings, build_id: str, stop_local: bool) -> None:
    from etl.runtime.versioning import DrainWatch

    print(f"waiting for {build_id} to drain (flows pinned to it finish on its workers)...", flush=True)
    state = await deployment.wait_drained(
        build_id, report=lambda s: print(f"  {build_id}: {DrainWatch.describe_state(s)}", flush=True))
    print(f"{build_id} has drained ({state.running_pinned} running flows): its workers may stop")
    if stop_local:
        from etl.devstack.local import DevStack
        from etl.devstack.version_workers import running_by_version, stop

        stack = DevStack(settings)
        pids = running_by_version(stack).get(build_id, [])
        stop(stack, pids)
        print(f"stopped {len(pids)} local workers of {build_id}")


async def _rollout(deployment, settings, args) -> int:
    from etl.core.errors import DeployError
    from etl.devstack.local import DevStack
    from etl.devstack.version_workers import fleet_by_version, start_version
    from etl.runtime.versioning import check_build_id, code_build_id

    new = check_build_id(args.build_id or code_build_id())
    old, ramping, _ = await deployment.routing()
    if new == old:
        raise DeployError(f"version {new} is already current: nothing to deploy (change the code, or give "
                          "--build-id)")
    stack = DevStack(settings)
    fleet = fleet_by_version(stack)
    # As many as the old version runs of its larger kind: a worker that died is replaced, not copied.
    count = args.workers or max([1, *map(len, fleet.get(old or "", {}).values())])
    queues = (await deployment.describe(old)).task_queues if old else [settings.task_queue,
                                                                      settings.streaming_task_queue]
    started = start_version(stack, count, deployment.name, new)
    running = {kind: len(pids) for kind, pids in fleet_by_version(stack).get(new, {}).items()}
    print(f"1. {new}: started {started['etl_worker']} batch and {started['streaming_worker']} streaming workers; "
          f"{running.get('etl_worker', 0)} and {running.get('streaming_worker', 0)} run (logs in {stack.workers_dir})")
    await deployment.wait_for_pollers(new, queues)
    print(f"   they poll {', '.join(queues)}")
    if args.ramp is not None:
        await deployment.set_ramp(new, args.ramp)
        print(f"2. {new} takes {args.ramp:g}% of new flows; {old} keeps the rest. When satisfied:\n"
              f"     python scripts/deploy.py rollout --build-id {new}      (make it current, drain {old})\n"
              f"   or roll back:  python scripts/deploy.py rollback           ({old} alone takes new flows, "
              f"{new} drains)")
        return 0
    await deployment.set_current(new)
    ended = ramping != new and await deployment.end_ramp()
    print(f"2. {new} is current: every new flow starts on it" + (f" (the ramp of {ended} ended)" if ended else ""))
    if not old:
        print("3. there was no previous version: nothing to drain")
        return 0
    print(f"3. {old} drains: flows started on it finish on its workers. To roll back instead:\n"
          f"     python scripts/deploy.py rollback {old}")
    await _drain(deployment, settings, old, stop_local=not args.keep_old_workers)
    return 0


if __name__ == "__main__":
    from etl.runtime.exit import run_command

    run_command(main)  # see etl/runtime/exit.py: never a crash on the way out, Temporal away is one line
