#!/usr/bin/env python3
"""Start, stop and show the embedded stack: a Temporal dev server with its UI, and PostgreSQL.

    python scripts/dev.py up [--workers N]       start (or reuse) both, wait until they answer
    python scripts/dev.py restart [--workers N]  drain every worker (SIGTERM), start them again
    python scripts/dev.py down                   stop what `up` started; the data stays in .etl/
    python scripts/dev.py status [--json]        addresses, what answers on each port and whose it is
                                                 (ours: started from this state dir), each worker with
                                                 its /healthz; exit 0 when both servers answer
    python scripts/dev.py env-example            write .env.example from every declared setting

Ports come from the settings: TEMPORAL_HOST (7233), TEMPORAL_UI_PORT (8233), DB_PORT (55432).
The `temporal` CLI reads TEMPORAL_ADDRESS instead of TEMPORAL_HOST: `up` and `status` print the
export line.

`up --workers N` makes exactly N batch and N streaming workers run: live ones are kept, missing
ones start at the free numbers (a dead worker's log is kept as .log.1), extra ones are drained
(SIGTERM, highest numbers first); `--workers 0` drains them all, and without --workers they are
left as they are. Each worker gets a free port of its own for /healthz and /metrics (HEALTH_PORT
is set per worker), shown by `status`; `up` waits until each new worker's /healthz says ok.

Workers read the settings (.env and the environment) once, when they start. `up` says when
running workers started with other settings than today's (then `restart`), or run other code
(then `scripts/deploy.py rollout`, which keeps running flows on the version they started on).
`restart` keeps the number of workers of each kind unless --workers says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from etl.core.errors import EtlError
from etl.core.settings import load_settings
from etl.devstack.local import WORKER_KINDS, DevStack


def export_line(settings) -> str:
    """The shell line that points the `temporal` CLI where our settings point."""
    line = f"export TEMPORAL_ADDRESS={settings.temporal_host}"
    if settings.temporal_namespace != "default":
        line += f" TEMPORAL_NAMESPACE={settings.temporal_namespace}"
    return line


def status_text(info: dict, settings) -> str:
    """`status` for people: each server's address, what answers there and whose it is, and each
    worker with the address of its /healthz and what that says."""
    lines = [
        f"Temporal     {info['temporal_address']:34} {info['temporal']['summary']}",
        f"PostgreSQL   {info['database_url']:34} {info['postgres']['summary']}",
        f"Temporal UI  {info['ui_url']}",
        f"Workers      {info['workers']} running ({', '.join(f'{n} {k}' for k, n in info['workers_by_kind'].items())})",
        *(f"  {w['name']:20} pid {w['pid']:<8} {w['healthz'] or '-':38} {w['health']}" for w in info["worker_list"]),
        f"State dir    {info['state_dir']}",
        f"temporal CLI {export_line(settings)}",
    ]
    return "\n".join(lines)


def outdated_lines(stack: DevStack, build_id: str) -> list[str]:
    """Warnings about running workers that do not run with today's settings or code."""
    old_settings, old_code = stack.outdated(build_id)
    lines = []
    if old_settings:
        lines.append(f"warning: {_names(old_settings)} started with other settings than .env and the environment "
                     "give now, and keep them until they restart: python scripts/dev.py restart")
    if old_code:
        builds = ", ".join(sorted({w.build_id for w in old_code}))
        lines.append(f"warning: the code changed since {_names(old_code)} started (they run build {builds}, the "
                     f"code now makes {build_id}): python scripts/deploy.py rollout starts the new version and "
                     "lets running flows finish on theirs (or python scripts/dev.py restart when none runs)")
    return lines


def _names(workers: list) -> str:
    return f"{len(workers)} worker{'s' if len(workers) != 1 else ''} ({', '.join(w.name for w in workers)})"


def workers_count(text: str) -> int:
    """`--workers N`: how many of each kind, 0 or more."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give how many workers of each kind "
                                         "to keep running, 0 or more") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"{count} is below 0; give how many workers of each kind to keep "
                                         "running, 0 or more (0 drains them all)")
    return count


def start(stack: DevStack, command: str, workers: int | None) -> None:
    """`up` and `restart`: start what is missing (after draining every worker, for `restart`), then
    print the addresses, each worker with its /healthz, and warnings about outdated workers."""
    from etl.runtime.versioning import worker_env

    # Every worker is a version of WORKER_DEPLOYMENT_NAME; new code gets a new build id
    # (deploy it with scripts/deploy.py rollout, which keeps running flows on their version).
    version = worker_env(stack.settings)
    if command == "restart":
        stopping = stack.workers()
        if workers is None:
            workers = max(1, *(sum(1 for w in stopping if w.kind == kind) for kind in WORKER_KINDS))
        print(f"draining {len(stopping)} worker{'s' if len(stopping) != 1 else ''} (SIGTERM: running "
              "activities finish or are handed back)...", flush=True)
        stack.stop_workers()
        older = sorted({w.build_id for w in stopping if w.build_id and w.build_id != version["WORKER_BUILD_ID"]})
        if older:
            print(f"note: the new workers are build {version['WORKER_BUILD_ID']}; flows pinned to build "
                  f"{', '.join(older)} wait for workers of it (python scripts/deploy.py status)", file=sys.stderr)
    drained = stack.up(workers=workers, env=version)
    if drained:
        print(f"drained {_names(drained)}: --workers {workers} keeps {workers} of each kind")
    info = stack.status()
    print(f"Temporal:    {info['temporal_address']}")
    print(f"Temporal UI: {info['ui_url']}")
    print(f"PostgreSQL:  {info['database_url']}")
    if info["workers"]:
        print(f"Workers:     {info['workers']} running (logs in {stack.workers_dir}):")
        for w in info["worker_list"]:
            print(f"  {w['name']:20} pid {w['pid']:<8} {w['healthz'] or '-':38} {w['health']}")
        print(f"Version:     {version['WORKER_DEPLOYMENT_NAME']}:{version['WORKER_BUILD_ID']} "
              "(python scripts/deploy.py status)")
    print("For the `temporal` CLI (it reads TEMPORAL_ADDRESS, not TEMPORAL_HOST):")
    print(f"  {export_line(stack.settings)}")
    for line in outdated_lines(stack, version["WORKER_BUILD_ID"]) + source_lines():
        print(line, file=sys.stderr)


def source_lines() -> list[str]:
    """Installed source packages that do not import (the workers serve every other source)."""
    from etl.core.discovery import failures

    return [f"error: {failure}" for failure in failures()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (idempotent) and print its addresses")
    up.add_argument("--workers", type=workers_count, default=None, metavar="N",
                    help="make exactly N batch and N streaming worker processes run: start the missing, drain "
                         "the extra (logs in .etl/workers/); default: leave them as they are")
    restart = sub.add_parser("restart", help="drain every worker with SIGTERM and start them again (after "
                                             "changing .env or the environment)")
    restart.add_argument("--workers", type=workers_count, default=None, metavar="N",
                         help="start N of each kind (default: as many as run now, at least 1)")
    sub.add_parser("down", help="stop the stack and its workers; keep the data")
    status = sub.add_parser("status", help="show the addresses, what answers on each port and whose it is")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("env-example", help="write .env.example: the framework's and every source's settings")
    args = parser.parse_args(argv)
    if args.command == "env-example":
        from etl.core.settings import PROJECT_ROOT, env_example

        (PROJECT_ROOT / ".env.example").write_text(env_example())
        print(f"wrote {PROJECT_ROOT / '.env.example'}")
        return 0

    try:
        stack = DevStack(load_settings())
        if args.command in ("up", "restart"):
            start(stack, args.command, args.workers)
        elif args.command == "down":
            stack.down()
            print(f"stopped; data kept in {stack.state}")
            for what, owner in (("Temporal", stack.temporal_owner()), ("PostgreSQL", stack.postgres_owner())):
                if owner.listening and not owner.ours:  # another checkout's: not ours to stop
                    print(f"{what} on port {owner.port} was not started from here and still runs: {owner.describe()}")
        else:
            info = stack.status()
            if args.json:
                print(json.dumps(info))
            else:
                print(status_text(info, stack.settings))
                for line in source_lines():
                    print(line, file=sys.stderr)
            return 0 if info["temporal_ok"] and info["postgres_ok"] else 1
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
