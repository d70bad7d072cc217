#!/usr/bin/env python3
"""Start, stop and show the embedded stack: a Temporal dev server with its UI, and PostgreSQL.

    python scripts/dev.py up [--workers N]   start (or reuse) both, wait until they answer
    python scripts/dev.py down               stop what `up` started; the data stays in .etl/
    python scripts/dev.py status [--json]    addresses, what answers on each port and whose it is
                                             (ours: started from this state dir), workers running;
                                             exit 0 when both servers answer, whoever started them
    python scripts/dev.py env-example        write .env.example from every declared setting

Ports come from the settings: TEMPORAL_HOST (7233), TEMPORAL_UI_PORT (8233), DB_PORT (55432).
The `temporal` CLI reads TEMPORAL_ADDRESS instead of TEMPORAL_HOST: `up` and `status` print the
export line. `up --workers N` keeps N batch and N streaming workers running: live ones are kept,
and new ones take the free numbers (a dead worker's log is kept as .log.1).
"""

from __future__ import annotations

import argparse
import json
import sys

from etl.core.errors import EtlError
from etl.core.settings import load_settings
from etl.devstack.local import DevStack


def export_line(settings) -> str:
    """The shell line that points the `temporal` CLI where our settings point."""
    line = f"export TEMPORAL_ADDRESS={settings.temporal_host}"
    if settings.temporal_namespace != "default":
        line += f" TEMPORAL_NAMESPACE={settings.temporal_namespace}"
    return line


def status_text(info: dict, settings) -> str:
    """`status` for people: each server's address, what answers there and whose it is."""
    lines = [
        f"Temporal     {info['temporal_address']:34} {info['temporal']['summary']}",
        f"PostgreSQL   {info['database_url']:34} {info['postgres']['summary']}",
        f"Temporal UI  {info['ui_url']}",
        f"Workers      {info['workers']} running ({', '.join(f'{n} {k}' for k, n in info['workers_by_kind'].items())})",
        f"State dir    {info['state_dir']}",
        f"temporal CLI {export_line(settings)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (idempotent) and print its addresses")
    up.add_argument("--workers", type=int, default=0, metavar="N",
                    help="also start N batch and N streaming worker processes (logs in .etl/workers/)")
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
        if args.command == "up":
            from etl.runtime.versioning import worker_env

            # Every worker is a version of WORKER_DEPLOYMENT_NAME; new code gets a new build id
            # (deploy it with scripts/deploy.py rollout, which keeps running flows on their version).
            version = worker_env(stack.settings)
            stack.up(workers=args.workers, env=version)
            info = stack.status()
            print(f"Temporal:    {info['temporal_address']}")
            print(f"Temporal UI: {info['ui_url']}")
            print(f"PostgreSQL:  {info['database_url']}")
            if args.workers:
                print(f"Workers:     {info['workers']} running (logs in {stack.workers_dir})")
                print(f"Version:     {version['WORKER_DEPLOYMENT_NAME']}:{version['WORKER_BUILD_ID']} "
                      "(python scripts/deploy.py status)")
            print("For the `temporal` CLI (it reads TEMPORAL_ADDRESS, not TEMPORAL_HOST):")
            print(f"  {export_line(stack.settings)}")
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
            return 0 if info["temporal_ok"] and info["postgres_ok"] else 1
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
